from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from agl_optimizer import apo, text
from agl_optimizer.contract import BadInput, Rollout, parse_request
from agl_optimizer.llm_client import LlmError
from fake_llm_server import RESET, canned, completion, fake_llm_server, part_to_rewrite, system_text, user_text
from synthetic import (
    EXTRACTOR_INSTRUCTIONS,
    build_apo_input,
    build_extractor_input,
    build_replier_input,
    propose_in_process,
    with_algorithm,
    with_malformed_rollouts,
)
from test_cli import propose as propose_with_cli

CRITIQUE = "The prompt never says that infrastructure tools such as kubernetes belong to technology."
DESCRIPTION = "software, hardware, kubernetes clusters, compilers, databases and programming"
RULE = "Posts about infrastructure, compilers or databases are technology even when they mention weekends."
GOOD_ANSWERS = canned(CRITIQUE, DESCRIPTION, RULE)


def _propose(document: dict[str, Any]) -> dict[str, Any]:
    return propose_in_process(apo, document)


def test_each_branch_critiques_a_minibatch_of_low_reward_runs_then_applies_one_safe_edit() -> None:
    with fake_llm_server(GOOD_ANSWERS) as server:
        document = build_apo_input(server.base_url)
        output = _propose(document)

    assert [(candidate["id"], candidate["parent"]) for candidate in output["candidates"]] == [("r1c1", "incumbent"), ("r1c2", "incumbent")]
    description_child, rule_child = output["candidates"]
    incumbent = document["prompt"]["components"]

    # Branch 1 rewrote the description of the label its minibatch missed most, keeping the line's head.
    field, label = description_child["strategy"].removeprefix("apo-description:").split(".")
    component = document["agent"]["label_components"][field]
    assert text.label_lines(description_child["components"][component], [label])[label] == f"- {label}: {DESCRIPTION}"
    assert {name for name in incumbent if description_child["components"][name] != incumbent[name]} == {component}

    # Branch 2 appended a rule to the free-text root, after everything that was there.
    assert rule_child["strategy"] == "apo-rule"
    assert rule_child["components"]["instructions"] == incumbent["instructions"] + f"\n\nLearned rule: {RULE}"
    assert {name for name in incumbent if rule_child["components"][name] != incumbent[name]} == {"instructions"}
    assert CRITIQUE[:60] in rule_child["rationale"]

    assert output["stats"]["llm_calls"] == 4
    assert output["stats"]["rejected_edits"] == 0
    assert "note" not in output["stats"]
    assert [system_text(body) for body in server.requests] == [apo.CRITIC_SYSTEM, apo.DESCRIPTION_SYSTEM, apo.CRITIC_SYSTEM, apo.RULE_SYSTEM]
    assert CRITIQUE in server.requests[1]["messages"][1]["content"] and CRITIQUE in server.requests[3]["messages"][1]["content"]
    for body, headers in zip(server.requests, server.headers):
        assert (body["model"], body["temperature"], body["max_tokens"]) == ("fake-critic", 0, 256)
        assert headers["Authorization"] == "Bearer sk-test"


def test_critiques_see_only_the_parents_low_reward_runs() -> None:
    with fake_llm_server(GOOD_ANSWERS) as server:
        document = build_apo_input(server.base_url, minibatch_size=20, branch_factor=1)
        _propose(document)
    critique = server.requests[0]["messages"][1]["content"]
    low = [rollout for rollout in document["rollouts"] if rollout["reward"] < 1]
    perfect = [rollout for rollout in document["rollouts"] if rollout["reward"] == 1]
    assert critique.count("\n- Message: ") == len(low) == 15
    assert all(f'- Message: "{rollout["message"]}"' in critique for rollout in low)
    assert not any(rollout["message"] in critique for rollout in perfect)
    assert (
        '- Message: "Post: Database latency doubled after the driver update, frustrated"\n'
        '  Answer: {"category": "general", "sentiment": "negative"}\n'
        '  Expected: {"category": "technology", "sentiment": "negative"}\n'
        "  Reward: 0.5 (1 of 2 fields right)\n"
    ) in critique
    assert critique.startswith("The agent post-analyzer: Classifies a short social media post by category and sentiment.\n\nThe agent's instructions:")
    assert "{{" not in critique and "- technology: software" in critique, "the critic sees the rendered prompt"


def test_failed_partial_and_judge_scored_runs_are_shown_to_the_critic_as_they_are() -> None:
    with fake_llm_server(GOOD_ANSWERS) as server:
        document = with_malformed_rollouts(build_apo_input(server.base_url, minibatch_size=20, branch_factor=1))
        failed = next(rollout for rollout in document["rollouts"] if rollout["id"] == "ro-failed")
        failed.update(reward=-1.0, rewards=[{"scorer": "ground-truth", "value": -1.0, "reason": "the agent failed"}])
        output = _propose(document)
    critique = server.requests[0]["messages"][1]["content"]
    assert (
        '- Message: "Post: Kubernetes deploy timed out twice today"\n'
        "  No answer: model timeout after 30s\n"
        '  Expected: {"category": "technology", "sentiment": "negative"}\n'
        "  Reward: -1 (the agent failed)\n"
    ) in critique
    assert '- Message: "Post: Short post"\n  Answer: {"category": "general", "sentiment": "neutral", "reasoning": "nothing specific"}\n  Reward: 0.8\n' in critique
    assert "Investors loved the seed pitch" not in critique, "a run with reward 1 is not low"
    assert output["stats"]["rollouts"] == 43 and len(output["candidates"]) == 1


def test_a_later_round_improves_each_parent_from_its_own_runs() -> None:
    with fake_llm_server(GOOD_ANSWERS) as server:
        first_document = build_apo_input(server.base_url)
        first = _propose(first_document)
        second_document = copy.deepcopy(first_document)
        second_document.update(round=2, parents=[{"id": "r1c2", "components": first["candidates"][1]["components"]}])
        # r1c2 ran the first five posts (all technology) and answered "general"; the incumbent's runs
        # stay in the request, but they are not its parent's.
        own_runs = copy.deepcopy(first_document["rollouts"][:5])
        for rollout in own_runs:
            rollout.update(id=f"r1c2-{rollout['id']}", prompt_id="r1c2", reward=0.5)
            rollout["output"]["category"] = "general"
        second_document["rollouts"] += own_runs
        server.requests.clear()
        second = _propose(second_document)

    assert [(candidate["parent"], candidate["strategy"]) for candidate in second["candidates"]] == [("r1c2", "apo-description:category.technology")]
    critique = server.requests[0]["messages"][1]["content"]
    shown = re.findall(r'^- Message: "(.*)"$', critique, flags=re.MULTILINE)
    assert len(shown) == 4
    assert set(shown) <= {rollout["message"] for rollout in own_runs}
    assert "Learned rule: " + RULE in critique, "the critic sees the parent, not the incumbent"
    assert second["stats"]["note"] == "r1c2: 1 of 2 branches gave a child; rule edit rejected: a rule the prompt already has"


def test_the_same_input_and_a_deterministic_llm_give_the_same_output() -> None:
    with fake_llm_server(GOOD_ANSWERS) as server:
        outputs = [_propose(build_apo_input(server.base_url, branch_factor=4)) for _ in range(2)]
        requests = [json.dumps(body) for body in server.requests]
    assert outputs[0] == outputs[1]
    assert requests[:8] == requests[8:]
    assert [candidate["strategy"].split(":")[0] for candidate in outputs[0]["candidates"]] == ["apo-description", "apo-rule", "apo-rewrite", "apo-description"]


GARBAGE_EDITS = [
    '{"category": "general", "sentiment": "neutral"}',
    "ok",
    "word " * 80,
    "Use {{categories}} more carefully when you answer.",
    "The release of 1.1.1.beta.beta.beta.beta.beta.beta",
    "1. Post: Rust compiler errors are getting friendlier every release",
]


def test_garbage_edits_are_rejected_and_counted_and_the_parent_gets_fewer_children() -> None:
    edits = iter(GARBAGE_EDITS + [DESCRIPTION])

    def answer(body: dict[str, Any]) -> tuple[int, Any]:
        if system_text(body) == apo.CRITIC_SYSTEM:
            return 200, completion("```\nThe categories are vague.\n```")
        return 200, completion(next(edits))

    with fake_llm_server(answer) as server:
        document = build_apo_input(server.base_url, branch_factor=7)
        # Only the label descriptions are editable: every branch asks for a description.
        document["agent"]["editable"] = ["categories", "sentiments"]
        output = _propose(document)

    assert len(output["candidates"]) == 1
    assert output["stats"]["llm_calls"] == 14
    assert output["stats"]["rejected_edits"] == 6
    note = output["stats"]["note"]
    assert note.startswith("incumbent: 1 of 7 branches gave a child; ")
    reasons = ("JSON, not text", "too short: 'ok'", "too long (80 words", "contains placeholder braces", "repetitive ('beta' 6 times)", "echoes the runs")
    for reason in reasons:
        assert reason in note


def test_an_answer_without_content_is_an_empty_critique_and_no_child() -> None:
    with fake_llm_server(lambda body: (200, completion(None))) as server:
        output = _propose(build_apo_input(server.base_url))
    assert output["candidates"] == []
    assert output["stats"]["llm_calls"] == 2, "no edit is asked for without a critique"
    assert output["stats"]["note"] == "incumbent: 0 of 2 branches gave a child; empty critique; empty critique"


def test_a_parent_with_only_perfect_runs_gets_no_children_and_no_llm_call() -> None:
    with fake_llm_server(GOOD_ANSWERS) as server:
        document = build_apo_input(server.base_url)
        for rollout in document["rollouts"]:
            rollout["reward"] = 1.0
        output = _propose(document)
    assert server.requests == []
    assert output["candidates"] == []
    assert output["stats"]["note"] == "incumbent: no children: every scored rollout has reward 1, nothing to critique"


def test_a_connection_reset_is_retried_once() -> None:
    resets = iter([True, False, False, False, False])

    def answer(body: dict[str, Any]) -> tuple[int, Any]:
        return (RESET, None) if next(resets) else GOOD_ANSWERS(body)

    with fake_llm_server(answer) as server:
        output = _propose(build_apo_input(server.base_url))
    assert len(server.requests) == 5
    assert output["stats"]["llm_calls"] == 4
    assert len(output["candidates"]) == 2


def test_two_connection_resets_in_a_row_fail_the_call() -> None:
    with fake_llm_server(lambda body: (RESET, None)) as server:
        request = parse_request(build_apo_input(server.base_url))
        with pytest.raises(LlmError, match="the connection was reset twice"):
            apo.propose(request, lambda message: None)
    assert len(server.requests) == 2


def test_a_slow_endpoint_times_out_after_llm_timeout_s() -> None:
    def slow(body: dict[str, Any]) -> tuple[int, Any]:
        time.sleep(0.5)
        return GOOD_ANSWERS(body)

    with fake_llm_server(slow) as server:
        document = build_apo_input(server.base_url)
        document["llm"]["timeout_s"] = 0.1
        with pytest.raises(LlmError, match=r"timed out after 0.1 s \(llm.timeout_s\)"):
            apo.propose(parse_request(document), lambda message: None)


def test_an_http_error_is_a_crash_exit_that_names_the_status_and_writes_nothing(tmp_path: Path) -> None:
    with fake_llm_server(lambda body: (500, {"error": {"message": "the model fell over"}})) as server:
        result, output_path = propose_with_cli(tmp_path, build_apo_input(server.base_url))
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"error: LLM request failed: POST {server.base_url}/chat/completions answered HTTP 500")
    assert "the model fell over" in last_line
    assert "Traceback" not in result.stderr
    assert not output_path.exists()


def test_an_unreachable_endpoint_is_a_crash_exit(tmp_path: Path) -> None:
    with fake_llm_server(GOOD_ANSWERS) as server:
        base_url = server.base_url
    result, output_path = propose_with_cli(tmp_path, build_apo_input(base_url))
    assert result.returncode == 1
    assert "error: LLM request failed: POST " in result.stderr and "Connection refused" in result.stderr
    assert not output_path.exists()


def test_the_command_line_runs_apo_and_reports_progress_per_branch(tmp_path: Path) -> None:
    with fake_llm_server(GOOD_ANSWERS) as server:
        result, output_path = propose_with_cli(tmp_path, build_apo_input(server.base_url, branch_factor=3))
    assert result.returncode == 0, result.stderr
    output = json.loads(output_path.read_text(encoding="utf-8"))
    assert [candidate["strategy"] for candidate in output["candidates"]][1] == "apo-rule"
    events = [json.loads(line) for line in result.stderr.splitlines()]
    # Reading the input, one step per branch, one to finish the algorithm, writing the output.
    assert [event["done"] for event in events] == list(range(0, 1 + 1 + 3 + 1 + 1))
    assert events[-1]["total"] == 6
    assert "incumbent branch 2: apo-rule edit accepted" in [event["message"] for event in events]


@pytest.mark.parametrize(
    ("raw", "kind", "cleaned"),
    [
        ("New description: software and kubernetes", "description", "software and kubernetes"),
        ("- technology: software and kubernetes", "description", "software and kubernetes"),
        ('"software and kubernetes"', "description", "software and kubernetes"),
        ("```\nsoftware and kubernetes\n```", "description", "software and kubernetes"),
        ("software and kubernetes\n\nThis description adds kubernetes.", "description", "software and kubernetes"),
        ("Rule: Treat   kubernetes posts as technology.", "rule", "Treat kubernetes posts as technology."),
        ("**Learned rule:** Treat kubernetes posts as technology.", "rule", "Treat kubernetes posts as technology."),
        ("Here is a better rule:\n\nTreat kubernetes posts as technology.", "rule", "Treat kubernetes posts as technology."),
    ],
)
def test_clean_edit_keeps_the_first_line_without_echoed_labels_or_decoration(raw: str, kind: str, cleaned: str) -> None:
    document = build_apo_input("http://127.0.0.1:9/v1")
    components = document["prompt"]["components"]
    target = apo.Target("description", "categories", "category", "technology") if kind == "description" else apo.Target("rule", "instructions")
    assert apo.clean_edit(raw, target, components) == apo.Edit(cleaned, None)


def test_clean_edit_rejects_an_unchanged_description() -> None:
    components = build_apo_input("http://127.0.0.1:9/v1")["prompt"]["components"]
    target = apo.Target("description", "categories", "category", "technology")
    assert apo.clean_edit("Software, hardware, AI and programming", target, components) == apo.Edit(None, "the same description")


def test_with_rule_keeps_the_newest_rules_only() -> None:
    component = "Classify the post."
    for number in range(1, 6):
        component = text.with_rule(component, f"rule {number}", keep=3)
    assert component == "Classify the post.\n\nLearned rule: rule 3\nLearned rule: rule 4\nLearned rule: rule 5"


def test_with_description_keeps_the_label_head_and_the_keyword_suffix() -> None:
    component = "Pick one.\n  - technology: software; e.g. rust, kubernetes\n- general: anything else"
    assert text.with_description(component, "technology", "code and machines") == (
        "Pick one.\n  - technology: code and machines; e.g. rust, kubernetes\n- general: anything else"
    )


# --- agents without label sets, and whole rewrites -------------------------------------------------

EXTRACTOR_CRITIQUE = "The instructions do not say that an undisclosed amount is null, not 0."
EXTRACTOR_RULE = "When the announcement does not state the amount, answer null for amount_usd."


def _clearer_amounts(part: str) -> str:
    return part.replace("a number, or null when it is not stated", "a number such as 5000000 for $5M, or null when the text does not state it (never 0)")


def test_an_extractor_gets_a_rule_and_a_rewrite_of_its_instructions() -> None:
    with fake_llm_server(canned(EXTRACTOR_CRITIQUE, "unused", EXTRACTOR_RULE, _clearer_amounts)) as server:
        document = with_algorithm(build_extractor_input(), "apo", server.base_url)
        output = _propose(document)
    incumbent = document["prompt"]["components"]
    rule_child, rewrite_child = output["candidates"]
    assert (rule_child["strategy"], rewrite_child["strategy"]) == ("apo-rule", "apo-rewrite:instructions")
    assert rule_child["components"] == {**incumbent, "instructions": EXTRACTOR_INSTRUCTIONS + f"\n\nLearned rule: {EXTRACTOR_RULE}"}
    assert rewrite_child["components"] == {**incumbent, "instructions": _clearer_amounts(EXTRACTOR_INSTRUCTIONS)}
    assert "'instructions' rewritten" in rewrite_child["rationale"]
    assert all(candidate["train_score"] is None for candidate in output["candidates"]), "no label descriptions, no proxy"
    assert [system_text(body) for body in server.requests] == [apo.CRITIC_SYSTEM, apo.RULE_SYSTEM, apo.CRITIC_SYSTEM, apo.REWRITE_SYSTEM]
    # The rewrite request quotes the part as it is and names the placeholders to keep.
    assert part_to_rewrite(server.requests[3]) == EXTRACTOR_INSTRUCTIONS
    assert "Keep every placeholder exactly as written ({{examples}})" in user_text(server.requests[3])
    critique = user_text(server.requests[0])
    assert (
        '- Message: "Announcement: Cobalt Health announced new funding from Summit Fund; terms were not disclosed."\n'
        '  Answer: {"company": "Cobalt Health", "amount_usd": 0, "investors": ["Summit Fund"]}\n'
        '  Expected: {"company": "Cobalt Health", "amount_usd": null, "investors": ["Summit Fund"]}\n'
        "  Reward: 0.6667 (67% of fields right)\n"
    ) in critique


def test_a_text_agents_critique_quotes_replies_references_reasons_and_tool_calls() -> None:
    with fake_llm_server(canned("It promises refunds without checking the delivery date.", "unused", "Check the delivery date before you promise a refund.")) as server:
        document = with_algorithm(build_replier_input(), "apo", server.base_url, minibatch_size=20, branch_factor=2)
        document["rollouts"][4]["tool_calls"] *= 5
        output = _propose(document)
    critique = user_text(server.requests[0])
    assert (
        '- Message: "Customer email: I want my money back for order 4410, delivered two months ago."\n'
        '  Answer: "Sure, I refunded order 4410."\n'
        '  Expected: "Order 4410 was delivered 61 days ago, past the 30-day refund window."\n'
        '  Tool calls: lookupOrder({"orderId": "4410"}) -> {"status": "delivered", "delivered_days_ago": 61}\n'
        "  Reward: -0.5 (promised a refund outside the 30-day window)\n"
    ) in critique
    assert '  Tool calls: lookupOrder({"orderId": "5120"}); lookupOrder({"orderId": "5120"}); lookupOrder({"orderId": "5120"}) (+2 more)\n' in critique
    assert '- Message: "Customer email: Do you ship to Norway?"\n  Answer: "Yes, we ship to Norway in 5 to 7 days."\n  Reward: 0.8' in critique
    assert "Where is my order 1042" not in critique, "a run with reward 1 is not low"
    assert [candidate["strategy"] for candidate in output["candidates"]] == ["apo-rule", "apo-rewrite:instructions"]
    for candidate in output["candidates"]:
        assert candidate["components"]["policy"] == document["prompt"]["components"]["policy"], "policy is not editable"
        assert candidate["components"]["examples"] == ""
        assert {"{{policy}}", "{{examples}}"} <= set(re.findall(r"\{\{\w+\}\}", candidate["components"]["instructions"]))


def test_rejected_rewrites_are_counted_and_explained() -> None:
    answers = canned(EXTRACTOR_CRITIQUE, "unused", EXTRACTOR_RULE, lambda part: part.replace("{{examples}}", "").replace("You extract", "Extract"))
    with fake_llm_server(answers) as server:
        output = _propose(with_algorithm(build_extractor_input(), "apo", server.base_url))
    assert [candidate["strategy"] for candidate in output["candidates"]] == ["apo-rule"]
    assert output["stats"]["rejected_edits"] == 1
    assert output["stats"]["note"] == "incumbent: 1 of 2 branches gave a child; rewrite edit rejected: lost placeholder(s) {{examples}}"


CURRENT = "You extract the facts of a funding announcement.\nUse the fields below.\n\n{{examples}}\n\nAnswer with JSON only."


def _minibatch_message(message: str) -> Rollout:
    return Rollout("ro-1", "t1", "incumbent", {}, message, None, None, 0.0, (), None, ())


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "empty"),
        ('{"instructions": "Extract the facts. {{examples}}"}', 'JSON, not text: {"instructions": "Extract the facts. {{examples}}"}'),
        ("Extract the funding facts carefully and answer with JSON only, nothing else at all.", "lost placeholder(s) {{examples}}"),
        (CURRENT + "\n{{persona}}", "adds placeholder(s) {{persona}}"),
        (CURRENT + "\nNever write {{ in an answer.", "contains placeholder braces"),
        ("{{examples}} Extract facts.", "too short (3 words, the part has 17)"),
        (CURRENT + "\n" + "Be precise about amounts. " * 40, "too long (1148 characters, at most 616)"),
        (CURRENT + "\nCheck the amount twice.\nCheck the amount twice.\ncheck the amount twice.", "repetitive (the line 'check the amount twice.' 3 times)"),
        (CURRENT + "\nnull means not stated null means not stated null means not stated null means not stated", "repetitive ('null means not stated' 4 times)"),
        (CURRENT + "\n- Message: Acme raised $5M\n  Expected: 5000000", "echoes the runs instead of answering"),
        (CURRENT + "\nFor example Orbit Labs got new funding from Apex Partners; terms were not disclosed.", "echoes the runs instead of answering"),
        ("you extract the facts of a funding announcement. Use the fields below. {{examples}} Answer with JSON only.", "changes nothing"),
    ],
    ids=["empty", "json", "lost placeholder", "added placeholder", "stray braces", "too short", "too long", "repeated line", "repeated phrase", "echoed runs", "copied message", "unchanged"],
)
def test_clean_rewrite_rejects_what_cannot_replace_the_component(raw: str, problem: str) -> None:
    minibatch = [_minibatch_message("Announcement:\nOrbit Labs got new funding from Apex Partners; terms were not disclosed.")]
    assert apo.clean_rewrite(raw, CURRENT, minibatch) == apo.Edit(None, problem)


def test_clean_rewrite_keeps_the_new_text_without_the_announcement_and_fences() -> None:
    rewritten = CURRENT.replace("Use the fields below.", "Use the fields below; an amount not stated is null.")
    raw = f"Here is the rewritten part:\n```\n{rewritten}\n```"
    assert apo.clean_rewrite(f"```\n{rewritten}\n```", CURRENT) == apo.Edit(rewritten, None)
    assert apo.clean_rewrite(raw.replace("```\n", "", 1).replace("\n```", ""), CURRENT) == apo.Edit(rewritten, None)
    assert apo.clean_rewrite(f'"""\n{rewritten}\n"""', CURRENT) == apo.Edit(rewritten, None)


def test_only_editable_label_components_get_new_descriptions() -> None:
    with fake_llm_server(GOOD_ANSWERS) as server:
        document = build_apo_input(server.base_url, branch_factor=4, minibatch_size=20)
        document["agent"]["editable"] = ["sentiments", "instructions"]
        output = _propose(document)
    strategies = [candidate["strategy"] for candidate in output["candidates"]]
    assert strategies[0].startswith("apo-description:sentiment.")
    assert not any(strategy.startswith("apo-description:category") for strategy in strategies)
    for candidate in output["candidates"]:
        assert candidate["components"]["categories"] == document["prompt"]["components"]["categories"]


@pytest.mark.parametrize(
    "editable",
    [["examples"], []],
    ids=["only the examples", "nothing"],
)
def test_an_agent_with_no_component_apo_can_edit_is_refused(editable: list[str]) -> None:
    document = with_algorithm(build_extractor_input(), "apo", "http://127.0.0.1:9/v1")
    document["agent"]["editable"] = editable
    with pytest.raises(BadInput) as raised:
        apo.check_applicable(parse_request(document))
    assert str(raised.value) == (
        'input agent: algorithm "apo" cannot run: it edits label descriptions or free-text components, but the agent has no editable'
        " label component and no editable free-text component (one that is neither a label component nor the examples component);"
        f" agent.editable is: {', '.join(editable) or 'nothing'}"
    )
