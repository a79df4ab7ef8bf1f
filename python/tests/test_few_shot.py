from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from agl_optimizer import few_shot
from agl_optimizer.contract import BadInput, build_output, parse_request, validate_output
from synthetic import (
    ANNOUNCEMENTS,
    POSTS,
    build_extractor_input,
    build_input,
    build_replier_input,
    next_round,
    post_message,
    with_algorithm,
)


def _propose(document: dict[str, Any]) -> dict[str, Any]:
    document = document if document["algorithm"] == "few-shot" else with_algorithm(document, "few-shot", **_few_shot_params(document))
    request = parse_request(document)
    few_shot.check_applicable(request)
    output = build_output(request, few_shot.propose(request, lambda message: None))
    validate_output(output, document)
    return output


def _few_shot_params(document: dict[str, Any]) -> dict[str, int]:
    return {name: value for name, value in document["params"].items() if name in ("num_candidates", "max_examples")}


def _blocks(examples: str) -> list[tuple[str, str]]:
    """(message line, answer) of each demonstration, checking the layout of the whole component on the way."""
    assert examples.startswith("Examples:\n\n")
    blocks = []
    for block in examples.removeprefix("Examples:\n\n").split("\n\n"):
        message, answer = block.split("\n")
        assert answer.startswith("Answer: ")
        blocks.append((message, answer.removeprefix("Answer: ")))
    return blocks


def test_children_show_distinct_seeded_subsets_of_max_examples_then_half_then_a_quarter() -> None:
    output = _propose(build_input(num_candidates=4, max_examples=6))
    assert [candidate["strategy"] for candidate in output["candidates"]] == ["few-shot-6", "few-shot-3", "few-shot-1", "few-shot-6"]
    subsets = [[message for message, _ in _blocks(candidate["components"]["examples"])] for candidate in output["candidates"]]
    assert [len(subset) for subset in subsets] == [6, 3, 1, 6]
    assert len({tuple(subset) for subset in subsets}) == 4
    # Later children prefer messages earlier children did not show.
    assert not set(subsets[0]) & set(subsets[1])
    assert all(candidate["train_score"] is None for candidate in output["candidates"])
    assert output["stats"]["llm_calls"] == 0 and "note" not in output["stats"]


def test_a_classifier_demonstration_is_its_message_and_its_ground_truth_covering_distinct_labels() -> None:
    output = _propose(build_input())
    truths = {post_message(post): {"category": category, "sentiment": sentiment} for post, category, sentiment, _, _ in POSTS}
    blocks = _blocks(output["candidates"][0]["components"]["examples"])
    for message, answer in blocks:
        assert answer == json.dumps(truths[message], ensure_ascii=False)
    assert len({answer for _, answer in blocks}) == 6, "six different label combinations"
    perfect = {post_message(post) for post, category, sentiment, answered_category, answered_sentiment in POSTS if (category, sentiment) == (answered_category, answered_sentiment)}
    assert {message for message, _ in blocks} <= perfect, "only runs with the top reward are demonstrated"
    for candidate in output["candidates"]:
        changed = {name for name, component in candidate["components"].items() if component != build_input()["prompt"]["components"][name]}
        assert changed == {"examples"}


def test_the_same_seed_gives_the_same_children_and_other_seeds_draw_other_subsets() -> None:
    assert _propose(build_input(seed=7)) == _propose(build_input(seed=7))
    firsts = {seed: _propose(build_input(seed=seed))["candidates"][0]["components"]["examples"] for seed in range(6)}
    assert len(set(firsts.values())) > 1


def test_a_multi_line_message_and_non_ascii_text_are_written_on_one_line_as_they_are() -> None:
    document = build_input(max_examples=20, num_candidates=1)
    document["rollouts"][0]["message"] = "Post: Just shipped\nour Rust plugin — «3x» faster!\r\n  Café"
    examples = _propose(document)["candidates"][0]["components"]["examples"]
    assert "\n\nPost: Just shipped our Rust plugin — «3x» faster! Café\nAnswer: " in examples


def test_an_extractor_shows_answers_of_any_json_type_in_schema_order() -> None:
    document = build_extractor_input(num_candidates=2, max_examples=20)
    # Two runs without ground truth but with a perfect reward: their own output is the answer, if it fits the schema.
    document["rollouts"][3].update(expected=None, reward=1.0)
    document["rollouts"][3]["output"] = {"investors": [], "company": "Driftwood", "amount_usd": 750000}
    document["rollouts"][8].update(expected={"company": "Indigo Foods"}, reward=1.0, output={"company": "Indigo Foods", "amount_usd": "3M", "investors": []})
    output = _propose(document)
    truths = {f"Announcement: {announcement}": expected for announcement, expected, _ in ANNOUNCEMENTS}
    shown = dict(_blocks(output["candidates"][0]["components"]["examples"]))
    assert shown["Announcement: Driftwood, a travel app, secured $750K from angel investors."] == (
        '{"company": "Driftwood", "amount_usd": 750000, "investors": []}'
    ), "the run's own output, in the schema's order"
    assert not any("Indigo" in message for message in shown), '"3M" is not a number: that output does not fit the schema'
    for message, answer in shown.items():
        assert json.loads(answer) == truths[message]
        assert list(json.loads(answer)) == ["company", "amount_usd", "investors"]
    assert {json.dumps(json.loads(answer)["amount_usd"]) for answer in shown.values()} >= {"null"}


def test_an_extractor_output_contradicting_partial_ground_truth_is_not_demonstrated() -> None:
    document = build_extractor_input(num_candidates=1, max_examples=20)
    document["rollouts"][0].update(expected={"company": "Acme"}, reward=1.0)
    messages = [message for message, _ in _blocks(_propose(document)["candidates"][0]["components"]["examples"])]
    assert not any("Acme Robotics" in message for message in messages)


def test_a_text_agent_shows_its_own_best_replies_and_keeps_its_other_components() -> None:
    document = build_replier_input(max_examples=6)
    document["rollouts"][1]["output"]["text"] = "Order 2210 is being packed\n\nand leaves   tomorrow."
    output = _propose(document)
    assert [candidate["strategy"] for candidate in output["candidates"]] == ["few-shot-4", "few-shot-3", "few-shot-1"]
    blocks = _blocks(output["candidates"][0]["components"]["examples"])
    assert ("Customer email: Has order 2210 left the warehouse yet?", "Order 2210 is being packed and leaves tomorrow.") in blocks
    assert len(blocks) == 4, "the four replies with reward 1"
    for candidate in output["candidates"]:
        assert candidate["components"]["policy"] == document["prompt"]["components"]["policy"]
        assert candidate["components"]["instructions"] == document["prompt"]["components"]["instructions"]
    assert "4 with the agent's own answer" in output["candidates"][0]["rationale"]


def test_a_small_pool_gives_fewer_children_and_says_why() -> None:
    document = build_replier_input(num_candidates=10, max_examples=1)
    output = _propose(document)
    # Four replies to show one at a time: four distinct children.
    assert len({candidate["components"]["examples"] for candidate in output["candidates"]}) == len(output["candidates"]) == 4
    assert output["stats"]["note"] == "incumbent: only 4 distinct children of 10 requested: only 4 demonstrable messages, too few for more distinct subsets"


def test_no_run_good_enough_to_demonstrate_gives_no_children_and_a_note() -> None:
    document = build_extractor_input()
    for rollout in document["rollouts"]:
        rollout["reward"] = 0.0
    output = _propose(document)
    assert output["candidates"] == []
    assert output["stats"]["note"] == "incumbent: nothing to demonstrate: the best reward of a run with output is 0, nothing worth demonstrating"


def test_a_later_round_gives_each_parent_new_subsets_of_the_training_runs_only() -> None:
    first = with_algorithm(build_input(), "few-shot")
    second_document = next_round(first, _propose(first), ["r1c1"])
    # r1c1's own runs (its dev tasks) have other messages; they must never be demonstrated.
    for rollout in second_document["rollouts"]:
        if rollout["prompt_id"] == "r1c1":
            rollout["message"] = "Post: dev task " + rollout["id"]
    second = _propose(second_document)
    assert [candidate["parent"] for candidate in second["candidates"]] == ["r1c1"] * 3
    for candidate in second["candidates"]:
        assert "dev task" not in candidate["components"]["examples"]
        assert candidate["components"]["examples"] != second_document["parents"][0]["components"]["examples"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"examples_component": None}, "it writes demonstrations to the examples component, but agent.examples_component is null"),
        ({"editable": ["instructions"]}, 'it writes demonstrations to the examples component, but "examples" is not in agent.editable'),
    ],
    ids=["no examples component", "examples not editable"],
)
def test_an_agent_without_an_editable_examples_component_is_refused(change: dict[str, Any], reason: str) -> None:
    document = with_algorithm(build_extractor_input(), "few-shot")
    document["agent"].update(copy.deepcopy(change))
    with pytest.raises(BadInput) as raised:
        few_shot.check_applicable(parse_request(document))
    assert str(raised.value) == f'input agent: algorithm "few-shot" cannot run: {reason}'


def test_subset_sizes_halve_down_to_one() -> None:
    assert few_shot.subset_sizes(20) == [20, 10, 5, 2, 1]
    assert few_shot.subset_sizes(6) == [6, 3, 1]
    assert few_shot.subset_sizes(1) == [1]


def test_demonstrations_never_carry_a_placeholder_or_an_overlong_message() -> None:
    document = build_input(max_examples=20, num_candidates=1)
    document["rollouts"][0]["message"] = "Post: I love {{categories}} braces"
    document["rollouts"][1]["message"] = "Post: " + "kubernetes " * 400
    examples = _propose(document)["candidates"][0]["components"]["examples"]
    assert "{{" not in examples and "kubernetes kubernetes" not in examples
    assert re.match(r"Examples:\n\n", examples)
