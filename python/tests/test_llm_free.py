from __future__ import annotations

import json
import re
from typing import Any

from agl_optimizer import llm_free, text
from agl_optimizer.contract import ProposeRequest, build_output, parse_request, validate_output
from synthetic import POSTS, build_input, with_malformed_rollouts


def _propose(document: dict[str, Any]) -> dict[str, Any]:
    request = parse_request(document)
    output = build_output(request, llm_free.propose(request, lambda message: None))
    validate_output(output, document)
    return output


def _by_strategy(output: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {candidate["strategy"]: candidate for candidate in output["candidates"]}


def test_candidates_follow_the_strategy_order_and_are_valid() -> None:
    output = _propose(build_input())
    assert [candidate["strategy"] for candidate in output["candidates"]] == [
        "descriptions+examples",
        "descriptions",
        "examples",
    ]
    assert [candidate["id"] for candidate in output["candidates"]] == ["c1", "c2", "c3"]
    assert output["rounds"] == [{"round": 1, "best_train_score": max(c["train_score"] for c in output["candidates"]), "candidates": 3}]
    assert output["stats"] == {"rollouts": 40, "scored": 40, "failed": 0, "with_expected": 40}


def test_descriptions_gain_distinctive_keywords_and_keep_other_lines() -> None:
    categories = _by_strategy(_propose(build_input()))["descriptions"]["components"]["categories"]
    lines = categories.split("\n")
    assert lines[0] == "Pick exactly one category."
    assert lines[-1] == "When unsure, prefer general."
    technology = next(line for line in lines if line.startswith("- technology:"))
    assert technology.startswith("- technology: software, hardware, AI and programming; e.g. ")
    assert {"kubernetes", "rust", "database"} <= set(technology.split("; e.g. ")[1].split(", "))
    general = next(line for line in lines if line.startswith("- general:"))
    assert "coffee" in general and "hiking" in general


def test_keywords_respect_max_keywords_and_skip_words_already_described() -> None:
    document = build_input(max_keywords=2)
    document["prompt"]["components"]["categories"] = document["prompt"]["components"]["categories"].replace(
        "- technology: software", "- technology: kubernetes software"
    )
    technology = text.label_lines(
        _by_strategy(_propose(document))["descriptions"]["components"]["categories"], ["technology"]
    )["technology"]
    keywords = technology.split("; e.g. ")[1].split(", ")
    assert len(keywords) == 2
    assert "kubernetes" not in keywords


def test_examples_are_rendered_with_ground_truth_and_cover_distinct_combinations() -> None:
    examples = _by_strategy(_propose(build_input()))["examples"]["components"]["examples"]
    assert examples.startswith("Examples:\nPost: ")
    blocks = examples.removeprefix("Examples:\n").split("\n\n")
    assert len(blocks) == 6
    posts_by_text = {post: (category, sentiment) for post, category, sentiment, _, _ in POSTS}
    combinations = set()
    for block in blocks:
        post_line, answer_line = block.split("\n")
        post = post_line.removeprefix("Post: ")
        answer = answer_line.removeprefix("Answer: ")
        category, sentiment = posts_by_text[post]
        assert answer == json.dumps({"category": category, "sentiment": sentiment})
        combinations.add((category, sentiment))
    assert len(combinations) == 6


def test_examples_put_posts_on_one_line() -> None:
    document = build_input()
    document["rollouts"][0]["input"]["content"] = "Just shipped\nour Rust plugin,\r\n  3x faster!"
    examples = _by_strategy(_propose(document))["examples"]["components"]["examples"]
    assert "Post: Just shipped our Rust plugin, 3x faster!\n" in examples


def test_placeholders_are_preserved() -> None:
    document = build_input()
    document["prompt"]["components"]["categories"] += "\n{{category_footer}}"
    document["prompt"]["components"]["category_footer"] = "Never invent a category."
    document["prompt"]["components"]["sentiments"] = (
        "- positive: happy; e.g. {{positive_words}}\n- neutral: factual or mixed\n- negative: frustrated"
    )
    document["prompt"]["components"]["positive_words"] = "great"
    for candidate in _propose(document)["candidates"]:
        components = candidate["components"]
        for name in ("categories", "sentiments", "examples"):
            assert "{{" + name + "}}" in components["instructions"]
        assert "{{category_footer}}" in components["categories"]
        assert "{{positive_words}}" in components["sentiments"]


def test_keyword_suffix_is_replaced_not_duplicated_when_run_on_its_own_output() -> None:
    document = build_input()
    first = _by_strategy(_propose(document))["descriptions+examples"]
    document["prompt"]["components"] = first["components"]
    second = _propose(document)
    assert second["candidates"], "alternatives with fewer keywords or other examples remain"
    for candidate in second["candidates"]:
        for name in ("categories", "sentiments"):
            for line in candidate["components"][name].split("\n"):
                assert line.count("; e.g.") <= 1
        assert candidate["components"] != first["components"]
    # The learned keywords are a fixed point: re-learning finds nothing new to add.
    assert not any(candidate["strategy"] in ("descriptions", "descriptions+examples") for candidate in second["candidates"])


def test_a_previous_suffix_with_other_words_is_replaced() -> None:
    document = build_input()
    components = document["prompt"]["components"]
    components["categories"] = components["categories"].replace(
        "AI and programming", "AI and programming; e.g. mainframe, cobol"
    )
    categories = _by_strategy(_propose(document))["descriptions"]["components"]["categories"]
    technology = text.label_lines(categories, ["technology"])["technology"]
    assert "mainframe" not in technology
    assert technology.count("; e.g.") == 1


def test_malformed_rollouts_are_used_where_they_can_be() -> None:
    output = _propose(with_malformed_rollouts(build_input(max_examples=20)))
    assert output["stats"] == {"rollouts": 43, "scored": 42, "failed": 1, "with_expected": 42}
    examples = _by_strategy(output)["examples"]["components"]["examples"]
    # Partial ground truth agreeing with the output: the output is the answer.
    assert 'Post: Investors loved the seed pitch\nAnswer: {"category": "startups", "sentiment": "positive"}' in examples
    # A failed run has no output to show; a 0.8 run is below the 1.0 top reward.
    assert "timed out" not in examples
    assert "Short post" not in examples


def test_partial_ground_truth_contradicting_the_output_is_not_demonstrated() -> None:
    document = with_malformed_rollouts(build_input(max_examples=20))
    partial = next(rollout for rollout in document["rollouts"] if rollout["id"] == "ro-partial")
    partial["expected"] = {"category": "general"}
    examples = _by_strategy(_propose(document))["examples"]["components"]["examples"]
    assert "Investors loved the seed pitch" not in examples


def test_without_perfect_rewards_the_top_quartile_is_demonstrated() -> None:
    document = build_input(max_examples=20)
    for rollout in document["rollouts"]:
        rollout["reward"] = round(rollout["reward"] * 0.9, 2)
    rewards = sorted((rollout["reward"] for rollout in document["rollouts"]), reverse=True)
    threshold = rewards[len(rewards) // 4 - 1]
    allowed = {rollout["input"]["content"] for rollout in document["rollouts"] if rollout["reward"] >= threshold}
    examples = _by_strategy(_propose(document))["examples"]["components"]["examples"]
    shown = re.findall(r"^Post: (.*)$", examples, flags=re.MULTILINE)
    assert shown and set(shown) <= allowed


def test_same_seed_gives_identical_output_and_seed_drives_tie_breaks() -> None:
    assert _propose(build_input(seed=7)) == _propose(build_input(seed=7))
    document = build_input()
    for rollout in document["rollouts"]:
        rollout["input"]["content"] = rollout["input"]["content"][:18].ljust(18, ".")
    # Equal-length posts: which one represents a label combination is up to the seeded RNG.
    examples_by_seed = {
        seed: _by_strategy(_propose({**document, "seed": seed}))["examples"]["components"]["examples"]
        for seed in range(5)
    }
    assert len(set(examples_by_seed.values())) > 1


def test_more_candidates_come_from_alternative_samples() -> None:
    output = _propose(build_input(num_candidates=5))
    strategies = [candidate["strategy"] for candidate in output["candidates"]]
    assert strategies[:3] == ["descriptions+examples", "descriptions", "examples"]
    assert strategies[3:] == ["descriptions+examples/alt1", "descriptions+examples/alt2"]
    primary_examples = set(output["candidates"][0]["components"]["examples"].split("\n\n"))
    alternative_examples = set(output["candidates"][3]["components"]["examples"].split("\n\n"))
    assert primary_examples != alternative_examples


def test_nothing_to_learn_gives_no_candidates_and_a_note() -> None:
    document = build_input(max_keywords=0)
    for rollout in document["rollouts"]:
        rollout["reward"] = 0.0
    output = _propose(document)
    assert output["candidates"] == []
    assert output["rounds"] == [{"round": 1, "best_train_score": None, "candidates": 0}]
    assert output["stats"]["note"].startswith("nothing to learn: params.max_keywords is 0; the best reward")


def test_proxy_score_rewards_sharper_descriptions() -> None:
    output = _propose(build_input())
    by_strategy = _by_strategy(output)
    assert by_strategy["descriptions"]["train_score"] > by_strategy["examples"]["train_score"]
    assert "Keyword-overlap proxy on the training rollouts" in by_strategy["descriptions"]["rationale"]


def test_proxy_score_is_absent_without_ground_truth() -> None:
    document = build_input()
    for rollout in document["rollouts"]:
        rollout["expected"] = None
    output = _propose(document)
    assert [candidate["strategy"] for candidate in output["candidates"]] == ["examples", "examples/alt1", "examples/alt2"]
    assert all(candidate["train_score"] is None for candidate in output["candidates"])
    assert output["rounds"][0]["best_train_score"] is None

    document["params"]["max_examples"] = 0
    note = _propose(document)["stats"]["note"]
    assert note == (
        "nothing to learn: no rollout has an expected value for a field with label descriptions;"
        " params.max_examples is 0"
    )


def test_keyword_overlap_accuracy_breaks_ties_with_the_agents_answer() -> None:
    document = build_input()
    document["rollouts"] = document["rollouts"][:1]
    document["rollouts"][0]["input"]["content"] = "nothing in common"
    request: ProposeRequest = parse_request(document)
    post_tokens = {rollout.input_text: text.token_set(rollout.input_text) for rollout in request.rollouts}
    assert llm_free.keyword_overlap_accuracy(request, request.components, post_tokens) == 1.0
