from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from agl_optimizer import llm_free, text
from agl_optimizer.contract import BadInput, parse_request
from agl_optimizer.proxy import keyword_overlap_accuracy
from synthetic import (
    ANNOUNCEMENTS,
    POSTS,
    build_extractor_input,
    build_input,
    build_replier_input,
    next_round,
    post_message,
    propose_in_process,
    scored_rollout,
    with_malformed_rollouts,
)

FIXTURES = Path(__file__).parent / "fixtures"


def _propose(document: dict[str, Any]) -> dict[str, Any]:
    return propose_in_process(llm_free, document)


def _by_strategy(output: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {candidate["strategy"]: candidate for candidate in output["candidates"]}


def _keywords(component: str, label: str) -> list[str]:
    line = text.label_lines(component, [label])[label]
    return line.split("; e.g. ")[1].split(", ") if "; e.g. " in line else []


def _shown_messages(examples: str) -> list[str]:
    """The message line of every demonstration block."""
    return re.findall(r"^(.*)\nAnswer: ", examples, flags=re.MULTILINE)


def _shown_posts(examples: str) -> list[str]:
    return [message.removeprefix("Post: ") for message in _shown_messages(examples)]


# --- the classifier ------------------------------------------------------------------------------


def test_round_one_children_vary_descriptions_and_examples_alone_and_combined() -> None:
    output = _propose(build_input())
    assert [(candidate["id"], candidate["parent"], candidate["strategy"]) for candidate in output["candidates"]] == [
        ("r1c1", "incumbent", "keywords-confused+examples"),
        ("r1c2", "incumbent", "keywords-confused"),
        ("r1c3", "incumbent", "examples"),
    ]
    assert output["rounds"] == [{"round": 1, "best_train_score": max(c["train_score"] for c in output["candidates"]), "candidates": 3}]
    assert output["stats"] == {"rollouts": 40, "scored": 40, "failed": 0, "with_expected": 40, "llm_calls": 0, "rejected_edits": 0}


def test_descriptions_gain_distinctive_keywords_and_keep_other_lines() -> None:
    categories = _by_strategy(_propose(build_input()))["keywords-confused"]["components"]["categories"]
    lines = categories.split("\n")
    assert lines[0] == "Pick exactly one category."
    assert lines[-1] == "When unsure, prefer general."
    technology = next(line for line in lines if line.startswith("- technology:"))
    assert technology.startswith("- technology: software, hardware, AI and programming; e.g. ")
    assert {"kubernetes", "rust", "database"} <= set(_keywords(categories, "technology"))
    assert {"coffee", "hiking"} <= set(_keywords(categories, "general"))


def test_labels_the_parent_confuses_get_twice_the_keyword_budget() -> None:
    output = _propose(build_input(max_keywords=2, num_candidates=6))
    by_strategy = _by_strategy(output)
    sharpened = by_strategy["keywords-confused"]["components"]
    plain = by_strategy["keywords"]["components"]
    # The agent answered some technology posts "general"; it got the sentiment of every negative post right.
    assert len(_keywords(sharpened["categories"], "technology")) == 4
    assert len(_keywords(plain["categories"], "technology")) == 2
    assert len(_keywords(sharpened["sentiments"], "negative")) <= 2
    assert all(len(_keywords(plain[name], label)) <= 2 for name, label in [("categories", "general"), ("sentiments", "positive")])


def test_keywords_skip_words_already_described_in_any_number() -> None:
    document = build_input(max_keywords=2)
    for components in (document["prompt"]["components"], document["parents"][0]["components"]):
        components["categories"] = components["categories"].replace("- technology: software", "- technology: kubernetes databases software")
    categories = _by_strategy(_propose(document))["keywords-confused"]["components"]["categories"]
    assert not {"kubernetes", "database"} & set(_keywords(categories, "technology"))


def _add_to_posts(document: dict[str, Any], label: str, indexes: list[int], words: str) -> None:
    """Appends `words` to the posts at `indexes` among those whose expected category is `label` (all other posts when label is None)."""
    runs = [rollout for rollout in document["rollouts"] if label is None or rollout["expected"]["category"] == label]
    for index in indexes:
        runs[index]["message"] += f" {words}"


def test_keywords_are_never_stop_words_numbers_handles_hashtags_or_urls() -> None:
    document = build_input(max_keywords=20)
    # In every startup post and no other: perfectly distinctive, yet not words a person would put in a description.
    _add_to_posts(document, "startups", list(range(10)), "about 2024 4x @zorbly_vc #quuxlife https://quux.example/deck www.pitchy.example")
    categories = _by_strategy(_propose(document))["keywords-confused"]["components"]["categories"]
    startups = _keywords(categories, "startups")
    assert startups and "investors" in startups
    assert not {"about", "2024", "4x", "zorbly", "zorbly_vc", "vc", "quuxlife", "quux", "example", "deck", "https", "www", "pitchy"} & set(startups)


def test_a_keyword_needs_a_significant_log_odds_ratio() -> None:
    document = build_input(max_keywords=20)
    _add_to_posts(document, "technology", [2, 3, 4], "quasar")  # 3 of 10, but also in 6 of the 30 others: not significant
    _add_to_posts(document, "startups", [0, 1, 2], "quasar")
    _add_to_posts(document, "general", [0, 1, 2], "quasar")
    _add_to_posts(document, "technology", [5, 6, 7], "nebula")  # 3 of 10 and none of the others: z = 2.14
    technology = _keywords(_by_strategy(_propose(document))["keywords-confused"]["components"]["categories"], "technology")
    assert "nebula" in technology
    assert "quasar" not in technology
    assert llm_free.keyword_z(3, 10, 0, 30) == pytest.approx(2.14, abs=0.01)
    assert llm_free.keyword_z(3, 10, 6, 30) == pytest.approx(0.72, abs=0.01)


def test_a_keyword_needs_three_messages_even_when_it_is_significant() -> None:
    document = build_input(max_keywords=20)
    # Only two technology posts are left, both with "zephyr": z = 2.83, but two messages are too few to generalise from.
    technology = [rollout for rollout in document["rollouts"] if rollout["expected"]["category"] == "technology"]
    document["rollouts"] = [rollout for rollout in document["rollouts"] if rollout not in technology[2:]]
    _add_to_posts(document, "technology", [0, 1], "zephyr")
    assert llm_free.keyword_z(2, 2, 0, 30) > llm_free.MIN_KEYWORD_Z
    categories = _by_strategy(_propose(document))["keywords-confused"]["components"]["categories"]
    assert "zephyr" not in _keywords(categories, "technology")


def test_label_lines_stay_within_the_word_cap() -> None:
    document = build_input(max_keywords=20)
    for components in (document["prompt"]["components"], document["parents"][0]["components"]):
        components["categories"] = components["categories"].replace(
            "- general: anything else", "- general: anything else, such as daily life, food, sport, travel, music, books, games, pets or family"
        )
    categories = _by_strategy(_propose(document))["keywords-confused"]["components"]["categories"]
    lines = text.label_lines(categories, ["technology", "startups", "product_management", "general"])
    assert all(len(text.words(line)) <= 20 for line in lines.values())
    # 16 words of label and description and the 2 of "e.g." leave room for 2 of the 4 keywords of the general line.
    assert _keywords(categories, "general") == ["coffee", "hiking"]
    assert len(_keywords(categories, "technology")) == 5


def _bundled_posts_request() -> dict[str, Any]:
    """The 180 training posts bundled with the post analyzer, answered by a fake agent that gets a third of
    the categories and half of the sentiments wrong (the same ones every time)."""
    posts = [json.loads(line) for line in (FIXTURES / "bundled_posts_train.jsonl").read_text(encoding="utf-8").splitlines()]
    categories = ["technology", "startups", "product_management", "general"]
    sentiments = ["positive", "neutral", "negative"]
    document = build_input(max_keywords=6, num_candidates=3)
    seed_components = {
        "categories": "\n".join(
            [
                "- technology: software, hardware, AI, programming and gadgets",
                "- startups: founding, funding and growing a young company",
                "- product_management: roadmaps, user research, priorities and shipping features",
                "- general: anything else, such as daily life, food, sport, travel or family",
            ]
        ),
        "sentiments": "\n".join(
            ["- positive: happy, excited, proud or grateful", "- negative: frustrated, disappointed, angry or worried", "- neutral: factual, informative or mixed"]
        ),
    }
    document["prompt"]["components"].update(seed_components)
    document["parents"][0]["components"] = copy.deepcopy(document["prompt"]["components"])
    document["rollouts"] = []
    for index, post in enumerate(posts):
        category = post["category"] if index % 3 else categories[(index // 3) % 4]
        sentiment = post["sentiment"] if index % 2 else sentiments[(index // 2) % 3]
        entry = (post["content"], post["category"], post["sentiment"], category, sentiment)
        document["rollouts"].append(scored_rollout(f"ro-{index:03d}", post["id"], "incumbent", entry))
    return document


def _presence_z(word: str, label: str, field: str, document: dict[str, Any]) -> tuple[int, float]:
    """Support and z-score of the log-odds ratio of `word` in `label`'s posts, counted here independently of the module."""
    inside = outside = inside_with = outside_with = 0
    for rollout in document["rollouts"]:
        has = word in re.findall(r"[a-z]+", rollout["message"].lower())
        if rollout["expected"][field] == label:
            inside, inside_with = inside + 1, inside_with + has
        else:
            outside, outside_with = outside + 1, outside_with + has
    cells = [inside_with + 0.5, inside - inside_with + 0.5, outside_with + 0.5, outside - outside_with + 0.5]
    ratio = math.log(cells[0] / cells[1]) - math.log(cells[2] / cells[3])
    return inside_with, ratio / math.sqrt(sum(1 / cell for cell in cells))


def test_keywords_on_the_bundled_posts_are_significant_words_a_person_would_accept() -> None:
    document = _bundled_posts_request()
    output = _propose(document)
    sharpened = _by_strategy(output)["keywords-confused"]["components"]
    fields = {"categories": ("category", ["technology", "startups", "product_management", "general"]), "sentiments": ("sentiment", ["positive", "neutral", "negative"])}
    # v2 wrote "- positive: ...; e.g. finally, local, without, angel, asking, checker" from these posts.
    assert text.label_lines(sharpened["sentiments"], ["positive"])["positive"] == "- positive: happy, excited, proud or grateful; e.g. finally, best"
    for component, (field, labels) in fields.items():
        for label, line in text.label_lines(sharpened[component], labels).items():
            assert len(text.words(line)) <= llm_free.MAX_LABEL_LINE_WORDS, line
            for word in _keywords(sharpened[component], label):
                support, z = _presence_z(word, label, field, document)
                assert word.isalpha() and word not in text.STOPWORDS, line
                assert support >= 3 and z >= 1.96, (line, word, support, z)
    assert not {"local", "without", "angel", "asking", "checker", "000"} & set(sharpened["sentiments"].replace(",", " ").split())
    assert "founder" in _keywords(sharpened["categories"], "startups")


def test_examples_are_rendered_in_the_demonstration_format_and_cover_distinct_combinations() -> None:
    examples = _by_strategy(_propose(build_input()))["examples"]["components"]["examples"]
    assert examples.startswith("Examples:\n\nPost: ")
    blocks = examples.removeprefix("Examples:\n\n").split("\n\n")
    assert len(blocks) == 6
    posts_by_text = {post: (category, sentiment) for post, category, sentiment, _, _ in POSTS}
    combinations = set()
    for block in blocks:
        message_line, answer_line = block.split("\n")
        category, sentiment = posts_by_text[message_line.removeprefix("Post: ")]
        assert answer_line == "Answer: " + json.dumps({"category": category, "sentiment": sentiment}, ensure_ascii=False)
        combinations.add((category, sentiment))
    assert len(combinations) == 6


def test_examples_put_messages_on_one_line() -> None:
    document = build_input(max_examples=20)
    document["rollouts"][0]["message"] = post_message("Just shipped\nour Rust plugin,\r\n  3x faster!")
    examples = _by_strategy(_propose(document))["examples"]["components"]["examples"]
    assert "\nPost: Just shipped our Rust plugin, 3x faster!\nAnswer: " in examples


def test_placeholders_are_preserved() -> None:
    document = build_input()
    components = document["prompt"]["components"]
    components["categories"] += "\n{{category_footer}}"
    components["category_footer"] = "Never invent a category."
    components["sentiments"] = "- positive: happy; e.g. {{positive_words}}\n- neutral: factual or mixed\n- negative: frustrated"
    components["positive_words"] = "great"
    document["agent"]["components"] += ["category_footer", "positive_words"]
    document["parents"][0]["components"] = copy.deepcopy(components)
    for candidate in _propose(document)["candidates"]:
        edited = candidate["components"]
        for name in ("categories", "sentiments", "examples"):
            assert "{{" + name + "}}" in edited["instructions"]
        assert "{{category_footer}}" in edited["categories"]
        assert "{{positive_words}}" in edited["sentiments"]


def test_a_previous_suffix_with_other_words_is_replaced() -> None:
    document = build_input()
    for components in (document["prompt"]["components"], document["parents"][0]["components"]):
        components["categories"] = components["categories"].replace("AI and programming", "AI and programming; e.g. mainframe, cobol")
    categories = _by_strategy(_propose(document))["keywords-confused"]["components"]["categories"]
    technology = text.label_lines(categories, ["technology"])["technology"]
    assert "mainframe" not in technology
    assert technology.count("; e.g.") == 1


def test_a_later_round_refines_each_parent_from_its_own_components() -> None:
    first_document = build_input()
    first = _propose(first_document)
    second = _propose(next_round(first_document, first, ["r1c1", "r1c3"]))
    parents = {candidate["id"]: candidate["components"] for candidate in first["candidates"]}
    assert {candidate["parent"] for candidate in second["candidates"]} == {"r1c1", "r1c3"}
    assert [candidate["id"] for candidate in second["candidates"]] == [f"r2c{number}" for number in range(1, len(second["candidates"]) + 1)]
    for candidate in second["candidates"]:
        parent = parents[candidate["parent"]]
        assert candidate["components"] != parent
        assert candidate["components"]["instructions"] == parent["instructions"]
        if "examples" not in candidate["strategy"]:
            assert candidate["components"]["examples"] == parent["examples"]
        if "keywords" not in candidate["strategy"]:
            assert candidate["components"]["categories"] == parent["categories"]
        for name in ("categories", "sentiments"):
            assert all(line.count("; e.g.") <= 1 for line in candidate["components"][name].split("\n"))


def test_children_never_repeat_the_incumbent_a_parent_or_each_other() -> None:
    first_document = build_input(num_candidates=2)
    first = _propose(first_document)
    second_document = next_round(first_document, first, ["r1c1"])
    # The incumbent is a parent again, next to its own first child.
    second_document["parents"].insert(0, copy.deepcopy(first_document["parents"][0]))
    second = _propose(second_document)
    seen = [first_document["prompt"]["components"], first["candidates"][0]["components"]]
    for candidate in second["candidates"]:
        assert candidate["components"] not in seen
        seen.append(candidate["components"])
    assert [candidate["parent"] for candidate in second["candidates"]].count("incumbent") == 2


def _parent_with_examples(examples: list[tuple[str, str, str]], wrong_posts: list[tuple[str, str, str, str, str]]) -> dict[str, Any]:
    """Round 2 with one parent r1c1 that shows `examples` and whose own runs got `wrong_posts` wrong."""
    document = build_input()
    components = copy.deepcopy(document["prompt"]["components"])
    components["examples"] = "Examples:\n\n" + "\n\n".join(
        f"Post: {post}\nAnswer: {json.dumps({'category': category, 'sentiment': sentiment})}" for post, category, sentiment in examples
    )
    document["round"] = 2
    document["parents"] = [{"id": "r1c1", "components": components}]
    document["rollouts"] += [scored_rollout(f"r1c1-{index}", f"d{index}", "r1c1", post) for index, post in enumerate(wrong_posts, start=1)]
    return document


def test_repair_drops_an_example_that_misled_the_parent_and_adds_similar_training_posts_with_the_missed_label() -> None:
    misleading = ("Kubernetes upgrade day, coffee and patience", "general", "neutral")
    helpful = ("We closed our seed round with amazing investors!", "startups", "positive")
    wrong = ("Kubernetes upgrade broke the cluster again", "technology", "negative", "general", "negative")
    output = _propose(_parent_with_examples([misleading, helpful], [wrong]))
    repaired = next(candidate for candidate in output["candidates"] if candidate["strategy"].endswith("examples-repaired"))
    # The corrections are the incumbent's training posts sharing the most words with the missed post and
    # labelled technology; the missed post itself (a task the parent is scored on) is never shown.
    assert _shown_posts(repaired["components"]["examples"]) == [
        helpful[0],
        "The compiler upgrade broke our kubernetes deploy pipeline again",
        "Our kubernetes cluster finally deploys in minutes, love it",
    ]
    assert "Dropped 1 examples" in repaired["rationale"] and "Added 2 training demonstrations" in repaired["rationale"]


def test_a_v2_examples_component_is_repaired_into_the_v3_layout() -> None:
    document = _parent_with_examples(
        [("Kubernetes upgrade day, coffee and patience", "general", "neutral")],
        [("Kubernetes upgrade broke the cluster again", "technology", "negative", "general", "negative")],
    )
    components = document["parents"][0]["components"]
    components["examples"] = components["examples"].replace("Examples:\n\n", "Examples:\n")
    repaired = next(candidate for candidate in _propose(document)["candidates"] if candidate["strategy"].endswith("examples-repaired"))
    assert repaired["components"]["examples"].startswith("Examples:\n\nPost: The compiler upgrade broke")


def test_examples_written_by_hand_are_never_repaired() -> None:
    document = _parent_with_examples([], [("Kubernetes upgrade broke the cluster again", "technology", "negative", "general", "negative")])
    document["parents"][0]["components"]["examples"] = "Post: a hand-written example, not in our format"
    strategies = [candidate["strategy"] for candidate in _propose(document)["candidates"]]
    assert not any("repaired" in strategy for strategy in strategies)


def test_a_candidate_parent_is_steered_by_its_own_runs_but_its_posts_never_enter_a_child() -> None:
    dev_posts = [
        ("Zanzibar quokka telemetry rollout for the build farm", "technology", "neutral", "general", "neutral"),
        ("Quokka telemetry dashboards for zanzibar servers", "technology", "positive", "general", "positive"),
    ]
    output = _propose(_parent_with_examples([("We closed our seed round with amazing investors!", "startups", "positive")], dev_posts))
    assert output["candidates"]
    for candidate in output["candidates"]:
        assert not any(word in component.lower() for component in candidate["components"].values() for word in ("zanzibar", "quokka", "telemetry"))
    sharpened = next(candidate["components"] for candidate in output["candidates"] if "keywords-confused" in candidate["strategy"])
    assert len(_keywords(sharpened["categories"], "technology")) > len(_keywords(sharpened["categories"], "product_management"))


def test_keywords_are_learned_from_the_incumbents_runs_with_more_words_for_the_labels_the_parent_confuses() -> None:
    document = _parent_with_examples(
        [("We closed our seed round with amazing investors!", "startups", "positive")],
        [("Our runway is short and investors keep ghosting us", "startups", "negative", "general", "negative")],
    )
    document["params"]["max_keywords"] = 2
    output = _propose(document)
    components = next(candidate["components"] for candidate in output["candidates"] if "keywords-confused" in candidate["strategy"])
    # Only 1 run of its own, yet words from the incumbent's 40 runs; only startups was confused by r1c1.
    assert "kubernetes" in _keywords(components["categories"], "technology")
    assert len(_keywords(components["categories"], "startups")) > len(_keywords(components["categories"], "technology"))


def test_malformed_rollouts_are_used_where_they_can_be() -> None:
    output = _propose(with_malformed_rollouts(build_input(max_examples=20)))
    assert output["stats"] == {"rollouts": 43, "scored": 42, "failed": 1, "with_expected": 42, "llm_calls": 0, "rejected_edits": 0}
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
    shown = _shown_posts(_by_strategy(_propose(document))["examples"]["components"]["examples"])
    assert shown and set(shown) <= allowed


def test_same_seed_gives_identical_output_and_the_seed_draws_the_examples() -> None:
    assert _propose(build_input(seed=7)) == _propose(build_input(seed=7))
    examples_by_seed = {seed: _by_strategy(_propose(build_input(seed=seed)))["examples"]["components"]["examples"] for seed in range(5)}
    assert len(set(examples_by_seed.values())) > 1


def test_the_rollout_ids_of_another_cycle_give_the_same_candidates() -> None:
    # Rollout ids hash the cycle id: the same tasks with the same results, run by another cycle, arrive
    # under unrelated ids, and the seeded choices must not follow them.
    document = build_input(num_candidates=8)
    renamed = copy.deepcopy(document)
    for index, rollout in enumerate(renamed["rollouts"]):
        rollout["id"] = f"ro-{(index * 7919) % 1000:03d}-other-cycle"
    assert [c["components"] for c in _propose(renamed)["candidates"]] == [c["components"] for c in _propose(document)["candidates"]]


def test_more_children_come_from_alternative_samples_with_fewer_or_more_examples() -> None:
    output = _propose(build_input(num_candidates=8, max_keywords=2))
    strategies = [candidate["strategy"] for candidate in output["candidates"]]
    assert strategies == [
        "keywords-confused+examples",
        "keywords-confused",
        "examples",
        "keywords+examples",
        "keywords",
        "keywords-fewer+examples-alt1",
        "keywords+examples-alt2",
        "keywords-fewer+examples-alt3",
    ]
    sizes = [len(_shown_posts(candidate["components"]["examples"])) for candidate in output["candidates"][5:]]
    assert sizes == [3, 6, 3]
    first_sample = set(_shown_posts(output["candidates"][0]["components"]["examples"]))
    assert not first_sample & set(_shown_posts(output["candidates"][5]["components"]["examples"]))


def test_nothing_to_learn_gives_no_candidates_and_a_note() -> None:
    document = build_input(max_keywords=0)
    for rollout in document["rollouts"]:
        rollout["reward"] = 0.0
    output = _propose(document)
    assert output["candidates"] == []
    assert output["rounds"] == [{"round": 1, "best_train_score": None, "candidates": 0}]
    assert output["stats"]["note"].startswith("incumbent: nothing to learn: params.max_keywords is 0; the best reward")


def test_proxy_score_rewards_sharper_descriptions() -> None:
    by_strategy = _by_strategy(_propose(build_input()))
    assert by_strategy["keywords-confused"]["train_score"] > by_strategy["examples"]["train_score"]
    assert "Keyword-overlap proxy on incumbent's rollouts" in by_strategy["keywords-confused"]["rationale"]


def test_proxy_score_is_absent_without_ground_truth() -> None:
    document = build_input()
    for rollout in document["rollouts"]:
        rollout["expected"] = None
    output = _propose(document)
    assert [candidate["strategy"] for candidate in output["candidates"]] == ["examples", "examples-alt1", "examples-alt2"]
    assert all(candidate["train_score"] is None for candidate in output["candidates"])
    assert output["rounds"][0]["best_train_score"] is None

    document["params"]["max_examples"] = 0
    assert _propose(document)["stats"]["note"] == (
        "incumbent: nothing to learn: no rollout has an expected value for a field with editable label descriptions;"
        " params.max_examples is 0"
    )


def test_keyword_overlap_accuracy_breaks_ties_with_the_agents_answer() -> None:
    document = build_input()
    document["rollouts"] = document["rollouts"][:1]
    document["rollouts"][0]["message"] = "nothing in common"
    request = parse_request(document)
    assert keyword_overlap_accuracy(request.agent, request.components, request.rollouts) == 1.0


def test_a_classifier_whose_examples_are_not_editable_gets_keyword_children_only() -> None:
    document = build_input(max_keywords=2)
    document["agent"]["editable"] = ["categories", "sentiments"]
    output = _propose(document)
    assert [candidate["strategy"] for candidate in output["candidates"]] == ["keywords-confused", "keywords", "keywords-fewer"]
    for candidate in output["candidates"]:
        assert {name for name, component in candidate["components"].items() if component != document["prompt"]["components"][name]} <= {"categories", "sentiments"}


def test_only_editable_label_components_are_sharpened() -> None:
    document = build_input()
    document["agent"]["editable"] = ["categories", "examples"]
    for candidate in _propose(document)["candidates"]:
        assert candidate["components"]["sentiments"] == document["prompt"]["components"]["sentiments"]
        assert candidate["components"]["instructions"] == document["prompt"]["components"]["instructions"]


# --- the structured extractor ---------------------------------------------------------------------


def test_an_extractor_gets_demonstrations_of_its_ground_truth_in_schema_order() -> None:
    document = build_extractor_input()
    # Ground truth written in another key order still shows in the schema's property order.
    document["rollouts"][0]["expected"] = {"investors": ["Northwind Ventures"], "amount_usd": 5000000, "company": "Acme Robotics"}
    output = _propose(document)
    assert [candidate["strategy"] for candidate in output["candidates"]] == ["examples", "examples-alt1", "examples-alt2"]
    assert all(candidate["train_score"] is None for candidate in output["candidates"]), "no label descriptions, no proxy"
    examples = output["candidates"][0]["components"]["examples"]
    assert (
        "Announcement: Acme Robotics raised $5M in a seed round led by Northwind Ventures.\n"
        'Answer: {"company": "Acme Robotics", "amount_usd": 5000000, "investors": ["Northwind Ventures"]}'
    ) in examples
    # Answers of every kind: a null amount, no investors, several investors.
    assert '"amount_usd": null' in examples and '"investors": []' in examples and re.search(r'"investors": \["[^"]+", "', examples)
    truths = {announcement: expected for announcement, expected, _ in ANNOUNCEMENTS}
    for message, answer in re.findall(r"^Announcement: (.*)\nAnswer: (.*)$", examples, flags=re.MULTILINE):
        assert json.loads(answer) == truths[message]
    for candidate in output["candidates"]:
        assert candidate["components"]["instructions"] == document["prompt"]["components"]["instructions"]


def test_an_extractor_parent_loses_the_example_that_taught_its_wrong_value() -> None:
    document = build_extractor_input()
    shown = [
        ("Nimbus Cloud raised funding from Vertex Fund; terms were not disclosed.", {"company": "Nimbus Cloud", "amount_usd": 0, "investors": ["Vertex Fund"]}),
        ("Ember Energy raised $40 million led by Greenfield Partners, with Oakline joining.", {"company": "Ember Energy", "amount_usd": 40000000, "investors": ["Greenfield Partners", "Oakline"]}),
    ]
    components = copy.deepcopy(document["prompt"]["components"])
    components["examples"] = "Examples:\n\n" + "\n\n".join(f"Announcement: {message}\nAnswer: {json.dumps(answer)}" for message, answer in shown)
    document.update(round=2, parents=[{"id": "r1c1", "components": components}])
    wrong = {
        "id": "r1c1-dev1",
        "task_id": "d001",
        "prompt_id": "r1c1",
        "input": {"announcement": "Orbit Labs got new funding from Apex Partners; terms were not disclosed."},
        "message": "Announcement:\nOrbit Labs got new funding from Apex Partners; terms were not disclosed.",
        "output": {"company": "Orbit Labs", "amount_usd": 0, "investors": ["Apex Partners"]},
        "expected": {"company": "Orbit Labs", "amount_usd": None, "investors": ["Apex Partners"]},
        "reward": 0.67,
    }
    document["rollouts"].append(wrong)
    repaired = next(candidate for candidate in _propose(document)["candidates"] if candidate["strategy"] == "examples-repaired")
    messages = _shown_messages(repaired["components"]["examples"])
    assert "Announcement: Nimbus Cloud raised funding from Vertex Fund; terms were not disclosed." not in messages
    assert messages[0] == f"Announcement: {shown[1][0]}"
    assert "Announcement: Cobalt Health announced new funding from Summit Fund; terms were not disclosed." in messages
    assert not any("Orbit Labs" in message for message in messages)


# --- the free-text agent --------------------------------------------------------------------------


def test_a_text_agent_gets_demonstrations_of_its_best_replies_on_one_line() -> None:
    document = build_replier_input()
    output = _propose(document)
    assert output["candidates"]
    for candidate in output["candidates"]:
        assert candidate["components"]["policy"] == document["prompt"]["components"]["policy"]
        assert candidate["components"]["instructions"] == document["prompt"]["components"]["instructions"]
    examples = output["candidates"][0]["components"]["examples"]
    assert "Customer email: Where is my order 1042?\nAnswer: Your order 1042 shipped with DHL; you will get it in two days." in examples
    assert "4410" not in examples and "Norway" not in examples, "only the top-reward replies are shown"


def test_an_agent_with_neither_editable_label_components_nor_editable_examples_is_refused() -> None:
    document = build_replier_input()
    document["agent"]["editable"] = ["instructions"]
    with pytest.raises(BadInput) as raised:
        llm_free.check_applicable(parse_request(document))
    assert str(raised.value) == (
        'input agent: algorithm "llm-free" cannot run: it sharpens label descriptions and writes demonstrations, but the agent has'
        ' no label component (agent.label_components is {}) and an examples component "examples" that is not in agent.editable'
    )
    classifier = build_input()
    classifier["agent"].update(editable=["instructions"], examples_component=None)
    with pytest.raises(BadInput, match=r"label components \(categories, sentiments\) that are not in agent.editable and no examples component \(agent.examples_component is null\)"):
        llm_free.check_applicable(parse_request(classifier))
