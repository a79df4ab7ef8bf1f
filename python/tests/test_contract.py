from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from agl_optimizer import llm_free
from agl_optimizer.contract import (
    BadInput,
    ContractError,
    LlmEndpoint,
    build_output,
    load_json,
    parse_request,
    validate_output,
)
from synthetic import CATEGORY_LABELS, build_apo_input, build_input, build_replier_input, next_round, with_malformed_rollouts

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


def _second_parent(rollout_prompt_id: str | None) -> Mutation:
    """Round 2 with a second parent r1c1 (label lines sharpened) whose runs are the given prompt's."""

    def mutate(document: dict[str, Any]) -> None:
        document["round"] = 2
        components = copy.deepcopy(document["prompt"]["components"])
        components["categories"] = components["categories"].replace("AI and programming", "AI and programming; e.g. rust")
        document["parents"].append({"id": "r1c1", "components": components})
        if rollout_prompt_id is not None:
            for rollout in document["rollouts"][:5]:
                rollout["prompt_id"] = rollout_prompt_id

    return mutate


def _unscore_second_parent(document: dict[str, Any]) -> None:
    _second_parent("r1c1")(document)
    for rollout in document["rollouts"][:5]:
        rollout["reward"] = None


def _apo_without_llm(document: dict[str, Any]) -> None:
    document["algorithm"] = "apo"
    document["params"] = {}


def _update(path: list[str | int], **values: object) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        target: Any = document
        for key in path:
            target = target[key]
        target.update(values)

    return mutate


def _instructions_not_editable(document: dict[str, Any]) -> None:
    document["agent"]["editable"] = ["categories", "sentiments", "examples"]


def _parent_edits_a_non_editable_component(document: dict[str, Any]) -> None:
    """Round 2 with a parent r1c1 that changed `instructions`, which the agent does not let optimizers edit."""
    _instructions_not_editable(document)
    _second_parent("r1c1")(document)
    document["parents"][1]["components"]["instructions"] += "\nLearned rule: be careful."


def _as_text_agent(**agent: object) -> Mutation:
    """The classifier's request turned into a text agent's (outputs as {"text": ...}), with `agent` keys overriding."""

    def mutate(document: dict[str, Any]) -> None:
        document["agent"].update(output={"kind": "text", "schema": None}, label_sets={}, label_components={})
        document["agent"].update(agent)
        for rollout in document["rollouts"]:
            rollout["output"] = {"text": "technology, positive"}
            rollout["expected"] = None

    return mutate


def _text_output_without_text(document: dict[str, Any]) -> None:
    _as_text_agent()(document)
    document["rollouts"][2]["output"] = {"reply": "hello"}


BAD_INPUTS: list[tuple[str, Mutation, str]] = [
    ("contract v2", _set(["schema_version"], 2), "input schema_version: unsupported schema version 2, this optimizer speaks 3"),
    ("contract v1", _set(["schema_version"], 1), "input schema_version: unsupported schema version 1, this optimizer speaks 3"),
    ("boolean schema_version", _set(["schema_version"], True), "input schema_version: unsupported schema version true"),
    ("missing schema_version", _delete(["schema_version"]), "input schema_version: missing required key"),
    ("unknown top-level key", _set(["extra"], 1), 'input: unknown key "extra"'),
    ("wrong command", _set(["command"], "evaluate"), 'input command: expected "propose", got "evaluate"'),
    ("unknown algorithm", _set(["algorithm"], "evolution"), 'input algorithm: unsupported algorithm "evolution" (supported: "llm-free", "few-shot", "apo", "gepa")'),
    ("float seed", _set(["seed"], 4.2), "input seed: expected an integer, got 4.2"),
    ("round 0", _set(["round"], 0), "input round: expected an integer >= 1, got 0"),
    ("missing round", _delete(["round"]), "input round: missing required key"),
    ("unknown param", _set(["params", "temperature"], 1), 'input params: unknown key "temperature"'),
    ("param of another algorithm", _set(["params", "branch_factor"], 2), 'input params: unknown key "branch_factor"'),
    ("param out of range", _set(["params", "num_candidates"], 11), "input params.num_candidates: expected an integer in [1, 10], got 11"),
    ("few-shot without examples", lambda document: document.update(algorithm="few-shot", params={"max_examples": 0}), "input params.max_examples: expected an integer in [1, 20], got 0"),
    ("apo without llm", _apo_without_llm, 'input llm: algorithm "apo" calls an LLM: give an OpenAI-compatible endpoint, got null'),
    ("llm with a file URL", _set(["llm"], {"base_url": "file:///etc/passwd", "model": "m"}), 'input llm.base_url: expected an http:// or https:// URL with a host, got "file:///etc/passwd"'),
    ("llm without host", _set(["llm"], {"base_url": "http://", "model": "m"}), "input llm.base_url: expected an http:// or https:// URL with a host"),
    ("llm timeout 0", _set(["llm"], {"base_url": "http://127.0.0.1:1/v1", "model": "m", "timeout_s": 0}), "input llm.timeout_s: expected a number of seconds above 0"),
    ("llm unknown key", _set(["llm"], {"base_url": "http://127.0.0.1:1/v1", "model": "m", "temperature": 1}), 'input llm: unknown key "temperature"'),
    # agent
    ("v2 agent keys", _set(["agent", "input_text_field"], "content"), 'input agent: unknown key "input_text_field"'),
    ("missing description", _delete(["agent", "description"]), "input agent.description: missing required key"),
    ("unknown output kind", _set(["agent", "output", "kind"], "array"), 'input agent.output.kind: expected one of "object", "text", got "array"'),
    ("structured output without schema", _set(["agent", "output", "schema"], None), 'input agent.output.schema: expected the JSON Schema of the structured output (kind "object"), got null'),
    ("schema of another type", _set(["agent", "output", "schema", "type"], "array"), 'input agent.output.schema.type: expected "object", got "array"'),
    ("schema without properties", _delete(["agent", "output", "schema", "properties"]), "input agent.output.schema.properties: missing required key"),
    ("schema requires an unknown field", _set(["agent", "output", "schema", "required"], ["category", "topic"]), 'input agent.output.schema.required[1]: "topic" is not a key of agent.output.schema.properties'),
    ("text output with a schema", _set(["agent", "output"], {"kind": "text", "schema": {"type": "object", "properties": {}}}), 'input agent.output.schema: expected null for an output of kind "text", got an object'),
    ("text agent with label sets", _as_text_agent(label_sets={"category": ["technology"]}), 'input agent.label_sets: expected {} for an output of kind "text"'),
    ("text agent with label components", _as_text_agent(label_components={"category": "categories"}), 'input agent.label_components: expected {} for an output of kind "text"'),
    ("components miss one", _set(["agent", "components"], ["instructions", "categories", "sentiments"]), 'input agent.components: does not list "examples", a component of prompt.components'),
    ("components name an unknown one", _set(["agent", "components"], ["instructions", "categories", "sentiments", "examples", "footer"]), 'input agent.components[4]: names no component of prompt.components: "footer"'),
    ("components repeat one", _set(["agent", "components"], ["instructions", "categories", "categories", "examples"]), 'input agent.components[2]: duplicate component "categories"'),
    ("editable names an unknown component", _set(["agent", "editable"], ["categories", "footer"]), 'input agent.editable[1]: names no component of agent.components: "footer"'),
    ("editable not a list", _set(["agent", "editable"], "categories"), 'input agent.editable: expected a list, got "categories"'),
    ("required placeholder missing from instructions", _set(["agent", "required_placeholders"], ["categories", "footer"]), "input agent.required_placeholders[1]: prompt.components.instructions has no placeholder {{footer}}"),
    ("empty label list", _set(["agent", "label_sets", "sentiment"], []), "input agent.label_sets.sentiment: expected a non-empty list of labels"),
    ("duplicate label", _set(["agent", "label_sets", "sentiment"], ["positive", "positive"]), 'input agent.label_sets.sentiment[1]: duplicate label "positive"'),
    ("label set of a field the schema lacks", _set(["agent", "label_sets", "topic"], ["a"]), 'input agent.label_sets.topic: "topic" is not a key of agent.output.schema.properties'),
    ("label component missing", _set(["agent", "label_components", "sentiment"], "moods"), 'input agent.label_components.sentiment: names no component of agent.components: "moods"'),
    ("label component for a field without a label set", _update(["agent"], label_sets={"category": CATEGORY_LABELS}, label_components={"sentiment": "sentiments"}), 'input agent.label_components.sentiment: "sentiment" is not a field of agent.label_sets'),
    ("two fields share a label component", _set(["agent", "label_components", "sentiment"], "categories"), 'input agent.label_components.sentiment: component "categories" is already used for another purpose'),
    ("label component is the examples component", _set(["agent", "label_components", "sentiment"], "examples"), 'input agent.label_components.sentiment: component "examples" is already used for another purpose'),
    ("examples component missing", _set(["agent", "examples_component"], "shots"), 'input agent.examples_component: names no component of agent.components: "shots"'),
    ("examples component with placeholder", _set(["prompt", "components", "examples"], "{{categories}}"), "input prompt.components.examples: the examples component is rewritten as a whole"),
    ("label without a line", _set(["prompt", "components", "sentiments"], "- positive: good\n- neutral: meh"), 'has no line of the form "- negative: <description>" for label "negative"'),
    # prompt and parents
    ("no parents", _set(["parents"], []), "input parents: empty list: give at least the incumbent to improve"),
    ("incumbent parent differs from the prompt", _set(["parents", 0, "components", "examples"], "Examples:"), 'input parents[0].components: the parent "incumbent" must have exactly the components of prompt.components'),
    ("parent of this round", _set(["parents", 0, "id"], "r1c1"), 'input parents[0].id: "r1c1" is a candidate of round 1, but this is round 1'),
    ("parent id not an id", _set(["parents", 0, "id"], "best"), 'input parents[0].id: expected "incumbent" or a candidate id such as "r1c2", got "best"'),
    ("parent lost a placeholder", _set(["parents", 0, "components", "instructions"], "no placeholders"), "input parents[0].components.instructions: lost placeholder(s) {{categories}}, {{examples}}, {{sentiments}}"),
    ("parent edited a non-editable component", _parent_edits_a_non_editable_component, 'input parents[1].components.instructions: not in agent.editable, so it must equal the component of "incumbent" byte for byte'),
    ("parent without its own rollouts", _second_parent(None), 'input parents[1]: no rollout has prompt_id "r1c1"'),
    ("parent without scored rollouts", _unscore_second_parent, 'input parents[1]: no scored rollouts: every reward of the 5 rollouts with prompt_id "r1c1" is null'),
    ("wrong engine", _set(["prompt", "engine"], "jinja"), 'input prompt.engine: expected "placeholders", got "jinja"'),
    ("non-string component", _set(["prompt", "components", "examples"], 3), "input prompt.components.examples: expected a string, got 3"),
    # rollouts
    ("rollout of a prompt from this round", _set(["rollouts", 4, "prompt_id"], "r1c2"), 'input rollouts[4].prompt_id: "r1c2" is a candidate of round 1, but this is round 1'),
    ("rollout without prompt_id", _delete(["rollouts", 4, "prompt_id"]), "input rollouts[4].prompt_id: missing required key"),
    ("rollout without message", _delete(["rollouts", 5, "message"]), "input rollouts[5].message: missing required key"),
    ("message not a string", _set(["rollouts", 5, "message"], ["Post:", "hi"]), "input rollouts[5].message: expected a string, got a list"),
    ("reward out of range", _set(["rollouts", 3, "reward"], 1.5), "input rollouts[3].reward: expected a number in [-1, 1], got 1.5"),
    ("reward not a number", _set(["rollouts", 3, "reward"], "x"), 'input rollouts[3].reward: expected a number in [-1, 1], got "x"'),
    ("scorer reward out of range", _set(["rollouts", 2, "rewards", 0, "value"], -2), "input rollouts[2].rewards[0].value: expected a number in [-1, 1], got -2"),
    ("expected label not allowed", _set(["rollouts", 0, "expected", "category"], "sports"), "input rollouts[0].expected.category: expected one of"),
    ("expected not an object", _set(["rollouts", 0, "expected"], "technology"), 'input rollouts[0].expected: expected an object, got "technology"'),
    ("output not an object", _set(["rollouts", 5, "output"], "technology"), 'input rollouts[5].output: expected an object, got "technology"'),
    ("text output without text", _text_output_without_text, 'input rollouts[2].output.text: missing required key: a text agent\'s output is {"text": "..."}'),
    ("error not a string", _set(["rollouts", 5, "error"], 500), "input rollouts[5].error: expected a string, got 500"),
    ("tool calls not a list", _set(["rollouts", 5, "tool_calls"], {"name": "lookup"}), "input rollouts[5].tool_calls: expected a list, got an object"),
    ("tool call without name", _set(["rollouts", 5, "tool_calls"], [{"args": {}}]), "input rollouts[5].tool_calls[0].name: missing required key"),
    ("tool call args not an object", _set(["rollouts", 5, "tool_calls"], [{"name": "lookup", "args": "1042"}]), 'input rollouts[5].tool_calls[0].args: expected an object, got "1042"'),
    ("tool call unknown key", _set(["rollouts", 5, "tool_calls"], [{"name": "lookup", "args": {}, "duration_ms": 3}]), 'input rollouts[5].tool_calls[0]: unknown key "duration_ms"'),
    ("unknown rollout key", _set(["rollouts", 5, "trace"], {}), 'input rollouts[5]: unknown key "trace"'),
    ("duplicate rollout id", _duplicate_first_rollout_id, 'input rollouts[1].id: duplicate rollout id "ro-001"'),
    ("empty rollouts", _set(["rollouts"], []), "input rollouts: empty list"),
    ("no scored rollouts", _unscore_all, 'input parents[0]: no scored rollouts: every reward of the 40 rollouts with prompt_id "incumbent" is null'),
]


@pytest.mark.parametrize(("mutate", "message"), [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_reported_with_its_json_path(mutate: Mutation, message: str) -> None:
    document = build_input()
    mutate(document)
    with pytest.raises(ContractError) as raised:
        parse_request(document)
    assert message in str(raised.value)


def test_params_and_llm_are_optional_with_defaults() -> None:
    document = build_input()
    del document["params"]
    del document["llm"]
    request = parse_request(document)
    assert request.params == {"num_candidates": 3, "max_examples": 6, "max_keywords": 6}
    assert request.llm is None
    apo = build_apo_input("http://127.0.0.1:9/v1/")
    apo["params"] = {"branch_factor": 3}
    del apo["llm"]["timeout_s"]
    del apo["llm"]["api_key"]
    request = parse_request(apo)
    assert request.params == {"branch_factor": 3, "minibatch_size": 4, "max_tokens": 256}
    assert request.llm == LlmEndpoint(base_url="http://127.0.0.1:9/v1", model="fake-critic", api_key=None, timeout_s=120.0)


def test_malformed_rollouts_are_accepted() -> None:
    request = parse_request(with_malformed_rollouts(build_input()))
    by_id = {rollout.id: rollout for rollout in request.rollouts}
    assert by_id["ro-failed"].output is None and by_id["ro-failed"].error == "model timeout after 30s"
    assert by_id["ro-failed"].missed_fields == {"category", "sentiment"}
    assert by_id["ro-partial"].expected == {"category": "startups"}
    assert by_id["ro-judged"].expected is None and by_id["ro-judged"].task_id is None
    assert by_id["ro-001"].reasons == ("2 of 2 fields right",)
    assert by_id["ro-004"].message == "Post: Database latency doubled after the driver update, frustrated"
    assert request.agent.missed_labels(by_id["ro-004"]) == {("category", "technology")}


def test_a_text_agent_with_tool_calls_is_read() -> None:
    request = parse_request(build_replier_input())
    agent = request.agent
    assert (agent.is_text, agent.fields, agent.output_schema) == (True, ("text",), None)
    assert agent.editable == {"instructions", "examples"} and agent.free_text_components == ("instructions",)
    first, _, _, _, no_tool_result = request.rollouts[:5]
    assert first.message == "Customer email:\nWhere is my order 1042?"
    assert first.output == {"text": "Your order 1042 shipped with DHL; you will get it in two days."}
    assert [(call.name, call.args, call.result) for call in first.tool_calls] == [("lookupOrder", {"orderId": "1042"}, '{"status": "shipped", "carrier": "DHL"}')]
    assert no_tool_result.tool_calls[0].result is None
    assert request.rollouts[5].tool_calls == ()


def test_expected_values_of_any_json_type_are_compared_as_javascript_would() -> None:
    document = build_input()
    document["agent"]["output"]["schema"]["properties"]["score"] = {"type": "number"}
    document["rollouts"][0].update(output={"category": "technology", "sentiment": "positive", "score": 1, "tags": [True]}, expected={"score": 1.0, "tags": [1]})
    rollout = parse_request(document).rollouts[0]
    assert rollout.missed_fields == {"tags"}, "1 == 1.0 in JSON, but true is not 1"


def test_rollouts_of_prompts_that_are_not_parents_are_accepted() -> None:
    """A later round may carry the runs of an earlier candidate that left the beam; they are not a parent's."""
    document = build_input()
    document["round"] = 3
    document["rollouts"][0]["prompt_id"] = "r2c4"
    request = parse_request(document)
    assert [parent.id for parent in request.parents] == ["incumbent"]
    assert len(request.rollouts_of(request.parents[0])) == 39


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


def _propose(document: dict[str, Any]) -> dict[str, Any]:
    request = parse_request(document)
    return build_output(request, llm_free.propose(request, lambda message: None))


def _valid_output() -> tuple[dict[str, Any], dict[str, Any]]:
    """Round 2 of llm-free with the parents r1c1 and r1c2, and its output."""
    first = build_input()
    document = next_round(first, _propose(first), ["r1c1", "r1c2"])
    return _propose(document), document


def test_validate_output_accepts_the_algorithm_output() -> None:
    output, document = _valid_output()
    validate_output(output, document)
    assert [candidate["id"] for candidate in output["candidates"]] == [f"r2c{number}" for number in range(1, 7)]
    assert [candidate["parent"] for candidate in output["candidates"]] == ["r1c1"] * 3 + ["r1c2"] * 3


def _drop_placeholder(output: dict[str, Any]) -> None:
    components = output["candidates"][0]["components"]
    components["instructions"] = components["instructions"].replace("{{sentiments}}", "")


def _copy_incumbent(output: dict[str, Any]) -> None:
    output["candidates"][0]["components"] = copy.deepcopy(build_input()["prompt"]["components"])


def _copy_parent(document: dict[str, Any]) -> Mutation:
    def mutate(output: dict[str, Any]) -> None:
        output["candidates"][3]["components"] = copy.deepcopy(document["parents"][0]["components"])

    return mutate


def _duplicate_candidate(output: dict[str, Any]) -> None:
    output["candidates"][1]["components"] = copy.deepcopy(output["candidates"][0]["components"])


def _no_candidates(output: dict[str, Any]) -> None:
    output["candidates"] = []
    output["rounds"][0].update(candidates=0, best_train_score=None)


BAD_OUTPUTS: list[tuple[str, Mutation, str]] = [
    ("lost placeholder", _drop_placeholder, "output candidates[0].components.instructions: lost placeholder(s) {{sentiments}}"),
    ("same as incumbent", _copy_incumbent, 'output candidates[0].components: identical to "incumbent"'),
    ("same as another parent", _copy_parent(_valid_output()[1]), 'output candidates[3].components: identical to "r1c1"'),
    ("duplicate candidate", _duplicate_candidate, 'output candidates[1].components: identical to "r2c1"'),
    ("missing component", _delete(["candidates", 0, "components", "sentiments"]), "output candidates[0].components.sentiments: missing required key"),
    ("extra component", _set(["candidates", 0, "components", "new"], "x"), 'output candidates[0].components: unknown key "new"'),
    ("emptied component", _set(["candidates", 0, "components", "categories"], ""), "output candidates[0].components.categories: expected a non-empty string"),
    ("label line lost", _set(["candidates", 0, "components", "sentiments"], "- positive: good"), 'has no line of the form "- neutral: <description>"'),
    ("wrong id", _set(["candidates", 1, "id"], "c2"), 'output candidates[1].id: expected "r2c2", got "c2"'),
    ("unknown parent", _set(["candidates", 1, "parent"], "r1c3"), 'output candidates[1].parent: expected the id of one of the request\'s parents, got "r1c3"'),
    ("too many children of a parent", _set(["candidates", 3, "parent"], "r1c1"), 'output candidates[3].parent: more than params.num_candidates = 3 children of "r1c1"'),
    ("score out of range", _set(["candidates", 0, "train_score"], 1.2), "output candidates[0].train_score: expected a number in [0, 1]"),
    ("other request id", _set(["request_id"], "other"), "output request_id: expected"),
    ("other round", _set(["round"], 3), "output round: expected 2 (copied from the input), got 3"),
    ("round entry of another round", _set(["rounds", 0, "round"], 1), "output rounds[0].round: expected an integer in [2, 2], got 1"),
    ("two round entries", _set(["rounds"], [{"round": 2, "best_train_score": None, "candidates": 6}] * 2), "output rounds: expected exactly one entry, for round 2, got 2"),
    ("round entry miscounts", _set(["rounds", 0, "candidates"], 5), "output rounds[0].candidates: expected an integer in [6, 6], got 5"),
    ("wrong stats", _set(["stats", "rollouts"], 3), "output stats.rollouts: expected an integer in [120, 120], got 3"),
    ("llm calls from llm-free", _set(["stats", "llm_calls"], 2), "output stats.llm_calls: expected an integer in [0, 0], got 2"),
    ("no candidates without note", _no_candidates, "output stats: missing key note"),
]


@pytest.mark.parametrize(("mutate", "message"), [case[1:] for case in BAD_OUTPUTS], ids=[case[0] for case in BAD_OUTPUTS])
def test_validate_output_rejects_out_of_contract_output(mutate: Mutation, message: str) -> None:
    output, document = _valid_output()
    mutate(output)
    with pytest.raises(ContractError) as raised:
        validate_output(output, document)
    assert message in str(raised.value)


def test_validate_output_rejects_a_change_to_a_component_the_agent_does_not_let_optimizers_edit() -> None:
    first = build_input()
    first["agent"]["editable"] = ["categories", "sentiments", "examples"]
    document = next_round(first, _propose(first), ["r1c1"])
    output = _propose(document)
    validate_output(output, document)
    output["candidates"][0]["components"]["instructions"] += "\nLearned rule: be careful."
    with pytest.raises(ContractError) as raised:
        validate_output(output, document)
    assert str(raised.value) == 'output candidates[0].components.instructions: not in agent.editable, so it must equal the component of "r1c1" byte for byte'
