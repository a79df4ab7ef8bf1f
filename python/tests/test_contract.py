from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from agl_optimizer import llm_free
from agl_optimizer.contract import (
    BadInput,
    ContractError,
    build_output,
    load_json,
    parse_request,
    validate_output,
)
from synthetic import build_input, with_malformed_rollouts

Mutation = Callable[[dict[str, Any]], object]


def _set(path: list[str | int], value: object) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        target: Any = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(path: list[str | int]) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        target: Any = document
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def _unscore_all(document: dict[str, Any]) -> None:
    for rollout in document["rollouts"]:
        rollout["reward"] = None


def _duplicate_first_rollout_id(document: dict[str, Any]) -> None:
    document["rollouts"][1]["id"] = document["rollouts"][0]["id"]


BAD_INPUTS: list[tuple[str, Mutation, str]] = [
    ("wrong schema_version", _set(["schema_version"], 2), "input schema_version: unsupported schema version 2"),
    ("boolean schema_version", _set(["schema_version"], True), "input schema_version: unsupported schema version true"),
    ("missing schema_version", _delete(["schema_version"]), "input schema_version: missing required key"),
    ("unknown top-level key", _set(["extra"], 1), 'input: unknown key "extra"'),
    ("wrong command", _set(["command"], "evaluate"), 'input command: expected "propose", got "evaluate"'),
    ("unknown algorithm", _set(["algorithm"], "gepa"), 'input algorithm: unsupported algorithm "gepa" (supported: "llm-free")'),
    ("float seed", _set(["seed"], 4.2), "input seed: expected an integer, got 4.2"),
    ("unknown param", _set(["params", "temperature"], 1), 'input params: unknown key "temperature"'),
    ("param out of range", _set(["params", "num_candidates"], 11), "input params.num_candidates: expected an integer in [1, 10], got 11"),
    ("wrong engine", _set(["prompt", "engine"], "jinja"), 'input prompt.engine: expected "placeholders", got "jinja"'),
    ("non-string component", _set(["prompt", "components", "examples"], 3), "input prompt.components.examples: expected a string, got 3"),
    ("empty label list", _set(["agent", "output_fields", "sentiment"], []), "input agent.output_fields.sentiment: expected a non-empty list of labels"),
    ("duplicate label", _set(["agent", "output_fields", "sentiment"], ["positive", "positive"]), 'input agent.output_fields.sentiment[1]: duplicate label "positive"'),
    ("label component missing", _set(["agent", "label_components", "sentiment"], "moods"), 'input agent.label_components.sentiment: names no component of prompt.components: "moods"'),
    ("label component for unknown field", _set(["agent", "label_components", "topic"], "categories"), 'input agent.label_components.topic: "topic" is not a field of agent.output_fields'),
    ("examples component missing", _set(["agent", "examples_component"], "shots"), 'input agent.examples_component: names no component of prompt.components: "shots"'),
    ("examples component with placeholder", _set(["prompt", "components", "examples"], "{{categories}}"), "input prompt.components.examples: the examples component is rewritten as a whole"),
    ("label without a line", _set(["prompt", "components", "sentiments"], "- positive: good\n- neutral: meh"), 'has no line of the form "- negative: <description>" for label "negative"'),
    ("reward out of range", _set(["rollouts", 3, "reward"], 1.5), "input rollouts[3].reward: expected a number in [-1, 1], got 1.5"),
    ("reward not a number", _set(["rollouts", 3, "reward"], "x"), 'input rollouts[3].reward: expected a number in [-1, 1], got "x"'),
    ("scorer reward out of range", _set(["rollouts", 2, "rewards", 0, "value"], -2), "input rollouts[2].rewards[0].value: expected a number in [-1, 1], got -2"),
    ("expected label not allowed", _set(["rollouts", 0, "expected", "category"], "sports"), "input rollouts[0].expected.category: expected one of"),
    ("expected unknown field", _set(["rollouts", 0, "expected", "topic"], "x"), 'input rollouts[0].expected: unknown key "topic"'),
    ("missing input text", _delete(["rollouts", 5, "input", "content"]), "input rollouts[5].input.content: missing the text field"),
    ("output not an object", _set(["rollouts", 5, "output"], "technology"), 'input rollouts[5].output: expected an object, got "technology"'),
    ("error not a string", _set(["rollouts", 5, "error"], 500), "input rollouts[5].error: expected a string, got 500"),
    ("unknown rollout key", _set(["rollouts", 5, "trace"], {}), 'input rollouts[5]: unknown key "trace"'),
    ("duplicate rollout id", _duplicate_first_rollout_id, 'input rollouts[1].id: duplicate rollout id "ro-001"'),
    ("empty rollouts", _set(["rollouts"], []), "input rollouts: empty list"),
    ("no scored rollouts", _unscore_all, "input rollouts: no scored rollouts"),
]


@pytest.mark.parametrize(("mutate", "message"), [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_reported_with_its_json_path(mutate: Mutation, message: str) -> None:
    document = build_input()
    mutate(document)
    with pytest.raises(ContractError) as raised:
        parse_request(document)
    assert message in str(raised.value)


def test_params_are_optional_with_defaults() -> None:
    document = build_input()
    del document["params"]
    params = parse_request(document).params
    assert (params.num_candidates, params.max_examples, params.max_keywords) == (3, 6, 6)


def test_malformed_rollouts_are_accepted() -> None:
    request = parse_request(with_malformed_rollouts(build_input()))
    by_id = {rollout.id: rollout for rollout in request.rollouts}
    assert by_id["ro-failed"].output is None and by_id["ro-failed"].error == "model timeout after 30s"
    assert by_id["ro-partial"].expected == {"category": "startups"}
    assert by_id["ro-judged"].expected is None


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"seed": NaN}', "NaN is not allowed"),
        ('{"seed": 1, "seed": 2}', 'duplicate key "seed"'),
    ],
)
def test_load_json_rejects_invalid_json(source: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        load_json(source, "input in.json")


def _valid_output() -> tuple[dict[str, Any], dict[str, Any]]:
    document = build_input()
    request = parse_request(document)
    return build_output(request, llm_free.propose(request, lambda message: None)), document


def test_validate_output_accepts_the_algorithm_output() -> None:
    output, document = _valid_output()
    validate_output(output, document)


def _drop_placeholder(output: dict[str, Any]) -> None:
    components = output["candidates"][0]["components"]
    components["instructions"] = components["instructions"].replace("{{sentiments}}", "")


def _copy_incumbent(output: dict[str, Any]) -> None:
    output["candidates"][0]["components"] = copy.deepcopy(build_input()["prompt"]["components"])


def _duplicate_candidate(output: dict[str, Any]) -> None:
    output["candidates"][1]["components"] = copy.deepcopy(output["candidates"][0]["components"])


BAD_OUTPUTS: list[tuple[str, Mutation, str]] = [
    ("lost placeholder", _drop_placeholder, "output candidates[0].components.instructions: lost placeholder(s) {{sentiments}}"),
    ("same as incumbent", _copy_incumbent, "output candidates[0].components: identical to the input prompt"),
    ("duplicate candidate", _duplicate_candidate, "output candidates[1].components: identical to candidate c1"),
    ("missing component", _delete(["candidates", 0, "components", "sentiments"]), "output candidates[0].components.sentiments: missing required key"),
    ("extra component", _set(["candidates", 0, "components", "new"], "x"), 'output candidates[0].components: unknown key "new"'),
    ("emptied component", _set(["candidates", 0, "components", "categories"], ""), "output candidates[0].components.categories: expected a non-empty string"),
    ("wrong id", _set(["candidates", 1, "id"], "c7"), 'output candidates[1].id: expected "c2", got "c7"'),
    ("score out of range", _set(["candidates", 0, "train_score"], 1.2), "output candidates[0].train_score: expected a number in [0, 1]"),
    ("other request id", _set(["request_id"], "other"), "output request_id: expected"),
    ("wrong stats", _set(["stats", "rollouts"], 3), "output stats.rollouts: expected an integer in [40, 40], got 3"),
    ("no candidates without note", _set(["candidates"], []), "output stats: missing key note"),
]


@pytest.mark.parametrize(("mutate", "message"), [case[1:] for case in BAD_OUTPUTS], ids=[case[0] for case in BAD_OUTPUTS])
def test_validate_output_rejects_out_of_contract_output(mutate: Mutation, message: str) -> None:
    output, document = _valid_output()
    mutate(output)
    with pytest.raises(ContractError) as raised:
        validate_output(output, document)
    assert message in str(raised.value)
