from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from agl_optimizer import gepa
from agl_optimizer.contract import BadInput, ContractError, parse_request, validate_output
from fake_llm_server import completion, fake_llm_server, part_to_rewrite, system_text, user_text
from synthetic import CATEGORIES, SENTIMENTS, build_input, build_replier_input, propose_in_process, with_algorithm
from test_cli import propose as propose_with_cli

BETTER_CATEGORIES = CATEGORIES.replace("- technology: software, hardware, AI and programming", "- technology: software, hardware, AI, programming, kubernetes, compilers and databases")
BETTER_SENTIMENTS = SENTIMENTS.replace("- negative: frustrated, disappointed or worried", "- negative: frustrated, disappointed, worried, broke or tired")


def _answer_with(new_text: str | None, *, fenced: bool = True):
    """A FAKE reflection model that answers every reflection with `new_text` (None: the part with a sentence added)."""

    def answer(body: dict[str, Any]) -> tuple[int, Any]:
        assert system_text(body) == gepa.REFLECT_SYSTEM
        reply = new_text if new_text is not None else f"{part_to_rewrite(body)}\nName the field you are unsure about."
        return 200, completion(f"Sure, here is the new part.\n```text\n{reply}\n```\nIt fixes the runs." if fenced else reply)

    return answer


def _reflect_input(base_url: str, component: str = "instructions", runs: slice = slice(0, 6)) -> dict[str, Any]:
    """A reflect step on the incumbent of the synthetic classifier, its minibatch the runs `runs` of build_input."""
    document = with_algorithm(build_input(), "gepa", base_url)
    document["rollouts"] = document["rollouts"][runs]
    document["gepa"] = {"step": "reflect", "component": component}
    document["request_id"] = "cy-post-analyzer-20261125-abcd/gepa/1/reflect"
    return document


def _propose(document: dict[str, Any]) -> dict[str, Any]:
    return propose_in_process(gepa, document)


def test_a_reflection_reads_each_runs_message_answer_and_reasons_and_rewrites_only_its_component() -> None:
    with fake_llm_server(_answer_with(BETTER_CATEGORIES)) as server:
        document = _reflect_input(server.base_url, "categories")
        output = _propose(document)

    [child] = output["candidates"]
    parent = document["parents"][0]["components"]
    assert (child["id"], child["parent"], child["strategy"]) == ("r1c1", "incumbent", "gepa-reflect:categories")
    # The text inside the fences, without the model's commentary around them.
    assert child["components"] == {**parent, "categories": BETTER_CATEGORIES}
    assert child["train_score"] is None
    assert output["stats"]["llm_calls"] == 1 and output["stats"]["rejected_edits"] == 0

    [body] = server.requests
    prompt = user_text(body)
    assert (body["temperature"], body["max_tokens"]) == (0, 512)
    assert f'reads now:\n"""\n{CATEGORIES}\n"""' in prompt
    assert 'one line "- <label>: <description>" for each category (technology, startups, product_management, general)' in prompt
    # The feedback is built from the minibatch's runs: each message, answer and the scorers' reasons.
    for rollout in document["rollouts"]:
        assert rollout["message"] in prompt
        assert json.dumps(rollout["output"]) in prompt
        assert rollout["rewards"][0]["reason"] in prompt
    assert "inside ``` fences" in prompt


def test_a_text_agents_reflection_sees_the_replies_tool_calls_and_the_judges_reasons() -> None:
    with fake_llm_server(_answer_with(None)) as server:
        document = with_algorithm(build_replier_input(), "gepa", server.base_url)
        output = _propose(document)

    [child] = output["candidates"]
    assert child["components"]["policy"] == document["prompt"]["components"]["policy"], "not editable"
    assert child["components"]["instructions"].endswith("Name the field you are unsure about.")
    prompt = user_text(server.requests[0])
    assert 'Tool calls: lookupOrder({"orderId": "4410"}) -> {"status": "delivered", "delivered_days_ago": 61}' in prompt
    assert "promised a refund outside the 30-day window" in prompt
    assert '"Sure, I refunded order 4410."' in prompt
    assert "Keep every placeholder exactly as written ({{examples}}, {{policy}})" in prompt


DEGENERATE: list[tuple[str, str, str]] = [
    ("an empty answer", "", "empty"),
    ("JSON", '{"category": "technology"}', "JSON, not text"),
    ("a lost placeholder", "You classify a post.\n{{categories}}\n{{examples}}\nAnswer with JSON, category and sentiment.", "lost placeholder(s) {{sentiments}}"),
    ("an added placeholder", build_input()["prompt"]["components"]["instructions"] + "\n{{notes}}", "adds placeholder(s) {{notes}}"),
    ("a loop", "{{categories}} {{sentiments}} {{examples}}\n" + "Answer with one JSON object.\n" * 6, "repetitive"),
    ("the same text", build_input()["prompt"]["components"]["instructions"], "changes nothing"),
    ("a copied run", build_input()["prompt"]["components"]["instructions"] + "\nPost: Just shipped our new Rust plugin, builds are 3x faster!", "echoes the runs"),
]


@pytest.mark.parametrize(("answer", "problem"), [case[1:] for case in DEGENERATE], ids=[case[0] for case in DEGENERATE])
def test_a_degenerate_or_placeholder_breaking_answer_gives_no_child_and_is_counted(answer: str, problem: str) -> None:
    with fake_llm_server(_answer_with(answer)) as server:
        output = _propose(_reflect_input(server.base_url))
    assert output["candidates"] == []
    assert output["stats"]["rejected_edits"] == 1 and output["stats"]["llm_calls"] == 1
    assert output["stats"]["note"].startswith("incumbent: rewrite of 'instructions' rejected: ")
    assert problem in output["stats"]["note"]


def test_a_label_component_must_keep_one_line_per_label() -> None:
    dropped = "\n".join(line for line in BETTER_CATEGORIES.split("\n") if not line.startswith("- general:"))
    doubled = BETTER_CATEGORIES + "\n- startups: seed rounds and investors"
    for answer, problem in ((dropped, 'no "- general: ..." line'), (doubled, '2 "- startups: ..." lines')):
        with fake_llm_server(_answer_with(answer)) as server:
            output = _propose(_reflect_input(server.base_url, "categories"))
        assert output["candidates"] == [] and problem in output["stats"]["note"], output["stats"]


def test_runs_without_a_reward_are_left_out_of_the_feedback() -> None:
    with fake_llm_server(_answer_with(BETTER_CATEGORIES)) as server:
        document = _reflect_input(server.base_url, "categories")
        unscored = document["rollouts"][3]
        unscored.update(reward=None, rewards=[])
        output = _propose(document)
    assert output["candidates"]
    prompt = user_text(server.requests[0])
    assert unscored["message"] not in prompt
    assert document["rollouts"][4]["message"] in prompt


def test_an_answer_without_fences_is_read_whole() -> None:
    with fake_llm_server(_answer_with(BETTER_SENTIMENTS, fenced=False)) as server:
        output = _propose(_reflect_input(server.base_url, "sentiments"))
    assert output["candidates"][0]["components"]["sentiments"] == BETTER_SENTIMENTS


def test_a_minibatch_the_parent_answered_perfectly_is_not_reflected_on() -> None:
    with fake_llm_server(_answer_with(None)) as server:
        perfect = [0, 1, 2]
        document = _reflect_input(server.base_url, runs=slice(0, 3))
        assert all(document["rollouts"][index]["reward"] == 1 for index in perfect)
        output = _propose(document)
    assert output["candidates"] == [] and server.requests == []
    assert "nothing to reflect on" in output["stats"]["note"]


def test_the_same_minibatch_and_a_deterministic_model_give_the_same_output() -> None:
    outputs = []
    for _ in range(2):
        with fake_llm_server(_answer_with(BETTER_CATEGORIES)) as server:
            outputs.append(_propose(_reflect_input(server.base_url, "categories")))
    assert outputs[0] == outputs[1]


def _merge_input(first: dict[str, str], second: dict[str, str], ancestor_id: str = "incumbent", ancestor: dict[str, str] | None = None) -> dict[str, Any]:
    document = with_algorithm(build_input(), "gepa")
    document["round"] = 4
    document["request_id"] = "cy-post-analyzer-20261125-abcd/gepa/4/merge"
    document["parents"] = [{"id": "r3c1", "components": first}, {"id": "r2c1", "components": second}]
    document["gepa"] = {"step": "merge", "ancestor": {"id": ancestor_id, "components": ancestor or copy.deepcopy(document["prompt"]["components"])}}
    document["rollouts"] = []
    return document


def _edited(**changes: str) -> dict[str, str]:
    return {**build_input()["prompt"]["components"], **changes}


def test_a_merge_takes_each_component_from_the_parent_that_changed_it() -> None:
    document = _merge_input(_edited(categories=BETTER_CATEGORIES), _edited(sentiments=BETTER_SENTIMENTS))
    output = _propose(document)
    [child] = output["candidates"]
    assert (child["id"], child["parent"], child["strategy"]) == ("r4c1", "r3c1", "gepa-merge")
    assert child["components"] == _edited(categories=BETTER_CATEGORIES, sentiments=BETTER_SENTIMENTS)
    assert child["rationale"] == "Merge of r3c1 and r2c1, descendants of incumbent: categories from r3c1; sentiments from r2c1."
    assert output["stats"]["llm_calls"] == 0


def test_where_both_parents_changed_a_component_the_first_parents_text_wins() -> None:
    worse = CATEGORIES.replace("AI and programming", "AI, programming and gadgets")
    output = _propose(_merge_input(_edited(categories=BETTER_CATEGORIES), _edited(categories=worse, sentiments=BETTER_SENTIMENTS)))
    assert output["candidates"][0]["components"] == _edited(categories=BETTER_CATEGORIES, sentiments=BETTER_SENTIMENTS)
    assert "categories from r3c1 (both changed it; r3c1 scored better)" in output["candidates"][0]["rationale"]


def test_a_merge_that_would_repeat_a_parent_gives_no_child() -> None:
    # r2c1 changed sentiments and categories; r3c1 only categories, the same way: the merge is r2c1.
    both = _edited(categories=BETTER_CATEGORIES, sentiments=BETTER_SENTIMENTS)
    output = _propose(_merge_input(_edited(categories=BETTER_CATEGORIES), both))
    assert output["candidates"] == []
    assert output["stats"]["note"] == "r3c1 + r2c1: nothing to merge, the merge is r2c1 (ancestor incumbent)"


def test_the_command_line_runs_a_merge_without_a_model(tmp_path: Path) -> None:
    document = _merge_input(_edited(categories=BETTER_CATEGORIES), _edited(sentiments=BETTER_SENTIMENTS))
    result, output_path = propose_with_cli(tmp_path, document)
    assert result.returncode == 0, result.stderr
    output = json.loads(output_path.read_text(encoding="utf-8"))
    validate_output(output, document)
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert [event["done"] for event in events] == [0, 1, 2, 3] and events[-1]["total"] == 3


def _without_gepa(document: dict[str, Any]) -> dict[str, Any]:
    del document["gepa"]
    return document


BAD_STEPS: list[tuple[str, Any, str]] = [
    ("gepa without its step", lambda: _without_gepa(_reflect_input("http://127.0.0.1:9/v1")), 'input gepa: missing: algorithm "gepa" needs the step to take'),
    ("a step for another algorithm", lambda: {**build_input(), "gepa": {"step": "merge"}}, 'input gepa: only algorithm "gepa" takes a gepa step, this request is "llm-free"'),
    ("an unknown step", lambda: {**_reflect_input("http://127.0.0.1:9/v1"), "gepa": {"step": "mutate"}}, 'input gepa.step: expected one of "reflect", "merge", got "mutate"'),
    ("a reflect step without its component", lambda: {**_reflect_input("http://127.0.0.1:9/v1"), "gepa": {"step": "reflect"}}, "input gepa.component: missing required key"),
    ("a component that does not exist", lambda: _reflect_input("http://127.0.0.1:9/v1", "tone"), 'input gepa.component: names no component of agent.components: "tone"'),
    ("a reflection without a model", lambda: {**_reflect_input("http://127.0.0.1:9/v1"), "llm": None}, 'input llm: algorithm "gepa" calls an LLM'),
    ("a reflection without runs", lambda: {**_reflect_input("http://127.0.0.1:9/v1"), "rollouts": []}, "input rollouts: empty list"),
    (
        "a merge of one parent",
        lambda: {**_merge_input(_edited(categories=BETTER_CATEGORIES), _edited()), "parents": [{"id": "r3c1", "components": _edited(categories=BETTER_CATEGORIES)}]},
        "input parents: a gepa merge step takes exactly 2 parents, got 1",
    ),
    (
        "an ancestor that is a parent",
        lambda: _merge_input(_edited(categories=BETTER_CATEGORIES), _edited(sentiments=BETTER_SENTIMENTS), "r2c1", _edited(sentiments=BETTER_SENTIMENTS)),
        'input gepa.ancestor.id: "r2c1" is one of the parents: a merge needs their common ancestor',
    ),
    (
        "an ancestor of a later round",
        lambda: _merge_input(_edited(categories=BETTER_CATEGORIES), _edited(sentiments=BETTER_SENTIMENTS), "r5c1", _edited()),
        'input gepa.ancestor.id: "r5c1" is a candidate of round 5, but this is round 4',
    ),
    (
        "an ancestor that lost a placeholder",
        lambda: _merge_input(_edited(categories=BETTER_CATEGORIES), _edited(sentiments=BETTER_SENTIMENTS), "r1c1", _edited(instructions="Classify. {{categories}} {{examples}}")),
        "input gepa.ancestor.components.instructions: lost placeholder(s) {{sentiments}}",
    ),
]


@pytest.mark.parametrize(("build", "message"), [case[1:] for case in BAD_STEPS], ids=[case[0] for case in BAD_STEPS])
def test_a_gepa_step_out_of_contract_is_refused_with_its_json_path(build: Any, message: str) -> None:
    with pytest.raises(ContractError) as raised:
        parse_request(build())
    assert message in str(raised.value)


def test_a_reflection_on_a_component_it_may_not_rewrite_is_bad_input(tmp_path: Path) -> None:
    document = _reflect_input("http://127.0.0.1:9/v1", "examples")
    with pytest.raises(BadInput, match="'examples' is not a component a reflection may rewrite \\(these are: instructions, categories, sentiments\\)"):
        gepa.check_applicable(parse_request(document))
    result, output_path = propose_with_cli(tmp_path, document)
    assert result.returncode == 2 and not output_path.exists()


def test_an_agent_with_nothing_to_reflect_on_is_refused() -> None:
    document = _reflect_input("http://127.0.0.1:9/v1", "examples")
    document["agent"]["editable"] = ["examples"]
    with pytest.raises(BadInput, match='algorithm "gepa" cannot run: it rewrites label components and free-text components'):
        gepa.check_applicable(parse_request(document))


def test_validate_output_allows_one_child_per_gepa_step() -> None:
    document = _merge_input(_edited(categories=BETTER_CATEGORIES), _edited(sentiments=BETTER_SENTIMENTS))
    output = _propose(document)
    second = {**copy.deepcopy(output["candidates"][0]), "id": "r4c2", "components": _edited(categories=BETTER_CATEGORIES, instructions=_edited()["instructions"] + " Be brief.")}
    output["candidates"].append(second)
    output["rounds"][0]["candidates"] = 2
    with pytest.raises(ContractError, match="a gepa merge step makes at most one child, got 2"):
        validate_output(output, document)
