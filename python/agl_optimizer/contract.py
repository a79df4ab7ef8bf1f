"""Contract v3 between the TypeScript training loop and this optimizer.

This is the only module that knows the JSON shape of the input and the output: it turns the input
document into typed objects (rejecting anything out of contract with the JSON path of the first
problem) and turns the algorithm's result back into an output document that is validated before
anyone writes it.

One call is one round of a search whose beam the workflow keeps: the request names the parents (the
beam members to improve), the rollouts say which parent produced them, and the response holds their
children, `r<round>c<n>`, for the workflow to score. For `gepa` one call is one step of an iteration
whose pool the workflow keeps (`gepa.step`: reflect on one component of one parent, or merge two).

The agent is described generically: its prompt components and which of them may be edited, its
output (a JSON Schema for structured agents, free text otherwise), and, only where the output has
closed label sets, which component describes each label.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

from agl_optimizer import text

CONTRACT_VERSION = 3
PROMPT_ENGINE = "placeholders"
INCUMBENT_ID = "incumbent"
# The component `agent.required_placeholders` are checked in (the root the agent renders its prompt from).
ROOT_COMPONENT = "instructions"
OUTPUT_KINDS = ("object", "text")
# A text agent's output travels as {"text": "..."}.
TEXT_FIELD = "text"

# algorithm -> param name -> (default, minimum, maximum)
PARAM_RANGES: dict[str, dict[str, tuple[int, int, int]]] = {
    "llm-free": {
        "num_candidates": (3, 1, 10),
        "max_examples": (6, 0, 20),
        "max_keywords": (6, 0, 20),
    },
    "few-shot": {
        "num_candidates": (3, 1, 10),
        "max_examples": (6, 1, 20),
    },
    "apo": {
        "branch_factor": (2, 1, 8),
        "minibatch_size": (4, 1, 20),
        "max_tokens": (256, 16, 2048),
    },
    "gepa": {
        "max_tokens": (512, 16, 4096),
    },
}
SUPPORTED_ALGORITHMS: tuple[str, ...] = tuple(PARAM_RANGES)
# The param that caps each parent's children; a gepa step makes at most one child.
CHILDREN_PARAM = {"llm-free": "num_candidates", "few-shot": "num_candidates", "apo": "branch_factor"}
ALGORITHMS_NEEDING_LLM = frozenset({"apo"})
GEPA = "gepa"
GEPA_STEPS = ("reflect", "merge")
MAX_LLM_TIMEOUT_S = 3600

_INPUT_KEYS = ("schema_version", "command", "request_id", "algorithm", "seed", "round", "agent", "prompt", "parents", "rollouts")
_INPUT_OPTIONAL_KEYS = ("params", "llm", "gepa")
_GEPA_KEYS = {"reflect": ("step", "component"), "merge": ("step", "ancestor")}
_AGENT_KEYS = (
    "name",
    "description",
    "output",
    "components",
    "editable",
    "required_placeholders",
    "label_sets",
    "label_components",
    "examples_component",
)
_AGENT_OUTPUT_KEYS = ("kind", "schema")
_PROMPT_KEYS = ("version", "engine", "components")
_PARENT_KEYS = ("id", "components")
_ROLLOUT_KEYS = ("id", "task_id", "prompt_id", "input", "message", "output", "reward")
_ROLLOUT_OPTIONAL_KEYS = ("expected", "rewards", "error", "tool_calls")
_SCORER_REWARD_KEYS = ("scorer", "value")
_TOOL_CALL_KEYS = ("name", "args")
_TOOL_CALL_OPTIONAL_KEYS = ("result",)
_LLM_KEYS = ("base_url", "model")
_LLM_OPTIONAL_KEYS = ("api_key", "timeout_s")
_OUTPUT_KEYS = ("schema_version", "request_id", "algorithm", "seed", "round", "candidates", "rounds", "stats")
_CANDIDATE_KEYS = ("id", "parent", "strategy", "components", "rationale", "train_score")
_ROUND_KEYS = ("round", "best_train_score", "candidates")
_STATS_KEYS = ("rollouts", "scored", "failed", "with_expected", "llm_calls", "rejected_edits")
_CANDIDATE_ID = re.compile(r"r([1-9][0-9]*)c([1-9][0-9]*)\Z")
DEFAULT_LLM_TIMEOUT_S = 120.0

# Receives a one-line message after each step of an algorithm.
Progress = Callable[[str], None]


class BadInput(Exception):
    """The input cannot be used; the message says what is wrong and where."""


class ContractError(BadInput):
    """A document breaks contract v3 at `path` (a JSON path such as `rollouts[3].reward`)."""

    def __init__(self, document: str, path: str, problem: str) -> None:
        self.document = document
        self.path = path
        self.problem = problem
        super().__init__(f"{document} {path}: {problem}" if path else f"{document}: {problem}")


def same_json(left: Any, right: Any) -> bool:
    """Equality of two JSON values as JavaScript would see them: 1 == 1.0, but true != 1 and key order is free."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same_json(left[key], right[key]) for key in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(same_json(a, b) for a, b in zip(left, right))
    return type(left) is type(right) and left == right


@dataclass(frozen=True)
class AgentSpec:
    name: str
    description: str
    output_kind: str  # "object" | "text"
    output_schema: dict[str, Any] | None  # JSON Schema of a structured output; None for text agents
    components: tuple[str, ...]  # every component, in the agent's order
    editable: frozenset[str]
    required_placeholders: tuple[str, ...]
    label_sets: dict[str, tuple[str, ...]]
    label_components: dict[str, str]
    examples_component: str | None

    @property
    def is_text(self) -> bool:
        return self.output_kind == "text"

    @property
    def fields(self) -> tuple[str, ...]:
        """The output's fields in the schema's property order (text agents: the one field `text`)."""
        if self.output_schema is None:
            return (TEXT_FIELD,)
        return tuple(self.output_schema["properties"])

    @property
    def required_fields(self) -> tuple[str, ...]:
        if self.output_schema is None:
            return (TEXT_FIELD,)
        return tuple(self.output_schema.get("required", ()))

    @property
    def editable_label_components(self) -> dict[str, str]:
        """field -> label component, for the label components an optimizer may change."""
        return {field: name for field, name in self.label_components.items() if name in self.editable}

    @property
    def editable_examples_component(self) -> str | None:
        return self.examples_component if self.examples_component in self.editable else None

    @property
    def free_text_components(self) -> tuple[str, ...]:
        """Editable components that are neither label components nor the examples component, in the agent's order."""
        special = {self.examples_component, *self.label_components.values()}
        return tuple(name for name in self.components if name in self.editable and name not in special)

    def missed_labels(self, rollout: Rollout) -> frozenset[tuple[str, str]]:
        """(field, expected label) of every expected label the run did not answer (all of them when it failed)."""
        return frozenset((name, rollout.expected[name]) for name in rollout.missed_fields if name in self.label_sets)


@dataclass(frozen=True)
class Parent:
    id: str
    components: dict[str, str]


@dataclass(frozen=True)
class ToolCall:
    name: str
    args: dict[str, Any]
    result: str | None  # the result as compact JSON, None when the call reported none


@dataclass(frozen=True)
class Rollout:
    id: str
    task_id: str | None
    prompt_id: str
    input: dict[str, Any]
    message: str  # the user message the agent was sent
    output: dict[str, Any] | None
    expected: dict[str, Any] | None
    reward: float | None
    reasons: tuple[str, ...]  # the scorers' explanations of the reward, in order
    error: str | None
    tool_calls: tuple[ToolCall, ...]

    @property
    def missed_fields(self) -> frozenset[str]:
        """The expected fields whose value the run did not give (every expected field when it failed)."""
        output = self.output
        return frozenset(
            name for name, value in (self.expected or {}).items() if output is None or name not in output or not same_json(output[name], value)
        )


def rollouts_of(rollouts: Sequence[Rollout], prompt_id: str) -> tuple[Rollout, ...]:
    """The runs of the prompt `prompt_id`, in input order."""
    return tuple(rollout for rollout in rollouts if rollout.prompt_id == prompt_id)


def stable_order(rollout: Rollout) -> tuple[bool, str, str, str]:
    """A sort key that is the same in every cycle: rollout ids hash the cycle id, task ids and messages do not.

    Seeded draws are assigned in this order, so the same tasks with the same results give the same
    candidates whichever cycle ran them.
    """
    return (rollout.task_id is None, rollout.task_id or "", rollout.message, rollout.id)


@dataclass(frozen=True)
class LlmEndpoint:
    base_url: str
    model: str
    api_key: str | None
    timeout_s: float


@dataclass(frozen=True)
class GepaStep:
    """One step of a GEPA iteration: rewrite `component` of the one parent, or merge the two parents."""

    step: str  # one of GEPA_STEPS
    component: str | None  # reflect: the component to rewrite
    ancestor: Parent | None  # merge: the parents' common ancestor

    @property
    def needs_llm(self) -> bool:
        return self.step == "reflect"


@dataclass(frozen=True)
class ProposeRequest:
    request_id: str
    algorithm: str
    seed: int
    round: int
    params: Mapping[str, int]  # every param of the algorithm, defaults filled in
    agent: AgentSpec
    components: dict[str, str]  # the incumbent (production) prompt
    parents: tuple[Parent, ...]
    rollouts: tuple[Rollout, ...]
    llm: LlmEndpoint | None
    gepa: GepaStep | None = None  # set exactly when algorithm is "gepa"

    @property
    def needs_llm(self) -> bool:
        return self.algorithm in ALGORITHMS_NEEDING_LLM or (self.gepa is not None and self.gepa.needs_llm)

    @property
    def children_limit(self) -> tuple[int, str]:
        """How many children one parent may get, and the name of the param (or step) that says so."""
        if self.gepa is not None:
            return 1, f"gepa.step {json.dumps(self.gepa.step)}"
        name = CHILDREN_PARAM[self.algorithm]
        return self.params[name], f"params.{name}"

    def rollouts_of(self, parent: Parent) -> tuple[Rollout, ...]:
        return rollouts_of(self.rollouts, parent.id)

    def rng_for(self, parent: Parent) -> random.Random:
        """The RNG of every random choice about `parent`'s children: the same seed, round and parent draw the same."""
        return random.Random(f"{self.seed}/{self.round}/{parent.id}")


def refusal(algorithm: str, problem: str) -> ContractError:
    """Bad input: `algorithm` cannot do anything for an agent of this shape (exit 2, nothing written)."""
    return ContractError("input", "agent", f"algorithm {json.dumps(algorithm)} cannot run: {problem}")


@dataclass(frozen=True)
class Candidate:
    parent: str
    strategy: str
    components: dict[str, str]
    rationale: str
    train_score: float | None


@dataclass(frozen=True)
class Proposal:
    candidates: tuple[Candidate, ...]
    note: str | None
    llm_calls: int = 0
    rejected_edits: int = 0


# --- reading -----------------------------------------------------------------------------------


def load_json(source: str, name: str) -> Any:
    """Parses JSON strictly: duplicate keys and NaN/Infinity are rejected as bad input."""

    def reject_constant(constant: str) -> NoReturn:
        raise BadInput(f"{name} is not valid JSON: {constant} is not allowed")

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        document: dict[str, Any] = {}
        for key, value in pairs:
            if key in document:
                raise BadInput(f"{name} is not valid JSON: duplicate key {json.dumps(key)}")
            document[key] = value
        return document

    try:
        return json.loads(source, object_pairs_hook=unique_keys, parse_constant=reject_constant)
    except json.JSONDecodeError as error:
        raise BadInput(f"{name} is not valid JSON: {error}") from None


class _Checker:
    """Type and range checks that report the JSON path of a problem inside one document."""

    def __init__(self, document: str) -> None:
        self.document = document

    def fail(self, path: str, problem: str) -> NoReturn:
        raise ContractError(self.document, path, problem)

    def object(
        self, value: Any, path: str, required: Collection[str], optional: Collection[str] = ()
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, f"expected an object, got {_describe(value)}")
        for key in value:
            if key not in required and key not in optional:
                allowed = ", ".join(sorted([*required, *optional]))
                self.fail(path, f"unknown key {json.dumps(key)} (allowed: {allowed})")
        for key in required:
            if key not in value:
                self.fail(child(path, key), "missing required key")
        return value

    def string(self, value: Any, path: str, *, allow_empty: bool = False) -> str:
        if not isinstance(value, str) or (not allow_empty and value == ""):
            wanted = "a string" if allow_empty else "a non-empty string"
            self.fail(path, f"expected {wanted}, got {_describe(value)}")
        return value

    def optional_string(self, value: Any, path: str) -> str | None:
        return None if value is None else self.string(value, path, allow_empty=True)

    def mapping(self, value: Any, path: str) -> dict[str, Any]:
        """An object whose keys are free (component names, output fields, agent input keys)."""
        if not isinstance(value, dict):
            self.fail(path, f"expected an object, got {_describe(value)}")
        return value

    def integer(self, value: Any, path: str, minimum: int | None = None, maximum: int | None = None) -> int:
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)
        ):
            self.fail(path, f"expected an integer{_range_text(minimum, maximum)}, got {_describe(value)}")
        return value

    def number(self, value: Any, path: str, minimum: float, maximum: float) -> float:
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not is_number or not minimum <= value <= maximum:
            self.fail(path, f"expected a number{_range_text(minimum, maximum)}, got {_describe(value)}")
        return float(value)

    def array(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            self.fail(path, f"expected a list, got {_describe(value)}")
        return value

    def distinct_strings(self, value: Any, path: str, what: str) -> list[str]:
        """A list of distinct non-empty strings (component names, labels, placeholders)."""
        items = self.array(value, path)
        for index, item in enumerate(items):
            self.string(item, f"{path}[{index}]")
            if item in items[:index]:
                self.fail(f"{path}[{index}]", f"duplicate {what} {json.dumps(item)}")
        return items


def parse_request(document: Any) -> ProposeRequest:
    """Validates an input document against contract v3; raises ContractError at the first problem."""
    check = _Checker("input")
    if not isinstance(document, dict):
        check.fail("", f"expected an object, got {_describe(document)}")
    # The version is checked first so that another version is reported as such, not as unknown keys.
    if "schema_version" not in document:
        check.fail("schema_version", "missing required key")
    version = document["schema_version"]
    if version != CONTRACT_VERSION or isinstance(version, bool):
        check.fail("schema_version", f"unsupported schema version {_describe(version)}, this optimizer speaks {CONTRACT_VERSION}")
    check.object(document, "", required=_INPUT_KEYS, optional=_INPUT_OPTIONAL_KEYS)
    if document["command"] != "propose":
        check.fail("command", f'expected "propose", got {_describe(document["command"])}')
    algorithm = check.string(document["algorithm"], "algorithm")
    if algorithm not in SUPPORTED_ALGORITHMS:
        supported = ", ".join(json.dumps(name) for name in SUPPORTED_ALGORITHMS)
        check.fail("algorithm", f"unsupported algorithm {json.dumps(algorithm)} (supported: {supported})")
    request_id = check.string(document["request_id"], "request_id")
    seed = check.integer(document["seed"], "seed")
    search_round = check.integer(document["round"], "round", minimum=1)
    params = _parse_params(check, document.get("params", {}), algorithm)
    components = _parse_prompt(check, document["prompt"])
    agent = _parse_agent(check, document["agent"], components)
    parents = _parse_parents(check, document["parents"], components, agent, search_round)
    gepa = _parse_gepa(check, document.get("gepa"), algorithm, components, agent, parents, search_round)
    needs_llm = algorithm in ALGORITHMS_NEEDING_LLM or (gepa is not None and gepa.needs_llm)
    llm = _parse_llm(check, document.get("llm"), algorithm, needs_llm)
    # A merge reads no runs: it combines the parents' components.
    rollouts = _parse_rollouts(check, document["rollouts"], agent, parents, search_round, need_runs=gepa is None or gepa.step != "merge")
    return ProposeRequest(
        request_id=request_id,
        algorithm=algorithm,
        seed=seed,
        round=search_round,
        params=params,
        agent=agent,
        components=components,
        parents=parents,
        rollouts=rollouts,
        llm=llm,
        gepa=gepa,
    )


def _parse_gepa(
    check: _Checker,
    value: Any,
    algorithm: str,
    incumbent: dict[str, str],
    agent: AgentSpec,
    parents: tuple[Parent, ...],
    search_round: int,
) -> GepaStep | None:
    """`gepa`: present exactly when the algorithm is gepa; a reflect step names one component of one parent,
    a merge step two parents and their common ancestor."""
    if algorithm != GEPA:
        if value is not None:
            check.fail("gepa", f'only algorithm "{GEPA}" takes a gepa step, this request is {json.dumps(algorithm)}')
        return None
    if value is None:
        check.fail("gepa", 'missing: algorithm "gepa" needs the step to take, {"step": "reflect", "component": ...} or {"step": "merge", "ancestor": ...}')
    step = check.mapping(value, "gepa").get("step")
    if step not in GEPA_STEPS:
        check.fail("gepa.step", f"expected one of {', '.join(json.dumps(option) for option in GEPA_STEPS)}, got {_describe(step)}")
    gepa = check.object(value, "gepa", required=_GEPA_KEYS[step])
    wanted_parents = 1 if step == "reflect" else 2
    if len(parents) != wanted_parents:
        check.fail("parents", f"a gepa {step} step takes exactly {wanted_parents} parent{'s' if wanted_parents > 1 else ''}, got {len(parents)}")
    if step == "reflect":
        component = check.string(gepa["component"], "gepa.component")
        if component not in incumbent:
            check.fail("gepa.component", f"names no component of agent.components: {json.dumps(component)}")
        return GepaStep(step, component, None)
    ancestor = _parse_prompt_ref(check, gepa["ancestor"], "gepa.ancestor", "ancestor", incumbent, agent, search_round)
    if any(parent.id == ancestor.id for parent in parents):
        check.fail("gepa.ancestor.id", f"{json.dumps(ancestor.id)} is one of the parents: a merge needs their common ancestor")
    return GepaStep(step, None, ancestor)


def _parse_params(check: _Checker, value: Any, algorithm: str) -> dict[str, int]:
    ranges = PARAM_RANGES[algorithm]
    params = check.object(value, "params", required=(), optional=ranges.keys())
    return {
        name: check.integer(params.get(name, default), child("params", name), minimum, maximum)
        for name, (default, minimum, maximum) in ranges.items()
    }


def _parse_llm(check: _Checker, value: Any, algorithm: str, needs_llm: bool) -> LlmEndpoint | None:
    if value is None:
        if needs_llm:
            check.fail("llm", f"algorithm {json.dumps(algorithm)} calls an LLM: give an OpenAI-compatible endpoint, got null")
        return None
    llm = check.object(value, "llm", required=_LLM_KEYS, optional=_LLM_OPTIONAL_KEYS)
    base_url = check.string(llm["base_url"], "llm.base_url")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        check.fail("llm.base_url", f"expected an http:// or https:// URL with a host, got {_describe(base_url)}")
    timeout_s = check.number(llm.get("timeout_s", DEFAULT_LLM_TIMEOUT_S), "llm.timeout_s", 0, MAX_LLM_TIMEOUT_S)
    if timeout_s == 0:
        check.fail("llm.timeout_s", "expected a number of seconds above 0")
    api_key = llm.get("api_key")
    return LlmEndpoint(
        base_url=base_url.rstrip("/"),
        model=check.string(llm["model"], "llm.model"),
        api_key=None if api_key is None else check.string(api_key, "llm.api_key"),
        timeout_s=timeout_s,
    )


def _parse_prompt(check: _Checker, value: Any) -> dict[str, str]:
    prompt = check.object(value, "prompt", required=_PROMPT_KEYS)
    check.integer(prompt["version"], "prompt.version", minimum=1)
    if prompt["engine"] != PROMPT_ENGINE:
        check.fail("prompt.engine", f'expected "{PROMPT_ENGINE}", got {_describe(prompt["engine"])}')
    components = check.mapping(prompt["components"], "prompt.components")
    if not components:
        check.fail("prompt.components", "expected at least one component")
    for name, component in components.items():
        check.string(component, child("prompt.components", name), allow_empty=True)
    return dict(components)


def _parse_output_spec(check: _Checker, value: Any) -> tuple[str, dict[str, Any] | None]:
    spec = check.object(value, "agent.output", required=_AGENT_OUTPUT_KEYS)
    kind = spec["kind"]
    if kind not in OUTPUT_KINDS:
        check.fail("agent.output.kind", f"expected one of {', '.join(json.dumps(option) for option in OUTPUT_KINDS)}, got {_describe(kind)}")
    schema = spec["schema"]
    if kind == "text":
        if schema is not None:
            check.fail("agent.output.schema", f'expected null for an output of kind "text", got {_describe(schema)}')
        return kind, None
    if schema is None:
        check.fail("agent.output.schema", 'expected the JSON Schema of the structured output (kind "object"), got null')
    schema = check.mapping(schema, "agent.output.schema")
    if schema.get("type") != "object":
        check.fail("agent.output.schema.type", f'expected "object", got {_describe(schema.get("type"))}')
    if "properties" not in schema:
        check.fail("agent.output.schema.properties", "missing required key")
    properties = check.mapping(schema["properties"], "agent.output.schema.properties")
    if "required" in schema:
        for index, name in enumerate(check.distinct_strings(schema["required"], "agent.output.schema.required", "field")):
            if name not in properties:
                check.fail(f"agent.output.schema.required[{index}]", f"{json.dumps(name)} is not a key of agent.output.schema.properties")
    return kind, schema


def _parse_agent(check: _Checker, value: Any, components: dict[str, str]) -> AgentSpec:
    agent = check.object(value, "agent", required=_AGENT_KEYS)
    name = check.string(agent["name"], "agent.name")
    description = check.string(agent["description"], "agent.description", allow_empty=True)
    output_kind, output_schema = _parse_output_spec(check, agent["output"])

    names = check.distinct_strings(agent["components"], "agent.components", "component")
    for index, component_name in enumerate(names):
        if component_name not in components:
            check.fail(f"agent.components[{index}]", f"names no component of prompt.components: {json.dumps(component_name)}")
    missing = [component_name for component_name in components if component_name not in names]
    if missing:
        check.fail("agent.components", "does not list " + ", ".join(json.dumps(component_name) for component_name in missing) + ", a component of prompt.components: list every component")

    editable = check.distinct_strings(agent["editable"], "agent.editable", "component")
    for index, component_name in enumerate(editable):
        if component_name not in components:
            check.fail(f"agent.editable[{index}]", f"names no component of agent.components: {json.dumps(component_name)}")

    required_placeholders = check.distinct_strings(agent["required_placeholders"], "agent.required_placeholders", "placeholder")
    for index, placeholder in enumerate(required_placeholders):
        if placeholder not in text.placeholders(components.get(ROOT_COMPONENT, "")):
            check.fail(f"agent.required_placeholders[{index}]", f"prompt.components.{ROOT_COMPONENT} has no placeholder {{{{{placeholder}}}}}")

    examples_component = agent["examples_component"]
    if examples_component is not None:
        examples_component = check.string(examples_component, "agent.examples_component")
        if examples_component not in components:
            check.fail("agent.examples_component", f"names no component of agent.components: {json.dumps(examples_component)}")
        found_placeholders = text.placeholders(components[examples_component])
        if found_placeholders:
            check.fail(
                child("prompt.components", examples_component),
                "the examples component is rewritten as a whole, so it must not contain placeholders, found "
                + ", ".join("{{" + placeholder + "}}" for placeholder in sorted(found_placeholders)),
            )

    label_sets = _parse_label_sets(check, agent["label_sets"], output_kind, output_schema)
    label_components_value = check.mapping(agent["label_components"], "agent.label_components")
    if output_kind == "text" and label_components_value:
        check.fail("agent.label_components", 'expected {} for an output of kind "text": a text agent has no label sets')
    label_components: dict[str, str] = {}
    for field, component_value in label_components_value.items():
        path = child("agent.label_components", field)
        if field not in label_sets:
            check.fail(path, f"{json.dumps(field)} is not a field of agent.label_sets")
        component_name = check.string(component_value, path)
        if component_name not in components:
            check.fail(path, f"names no component of agent.components: {json.dumps(component_name)}")
        if component_name == examples_component or component_name in label_components.values():
            check.fail(path, f"component {json.dumps(component_name)} is already used for another purpose")
        _check_label_lines(check, components[component_name], child("prompt.components", component_name), field, label_sets[field])
        label_components[field] = component_name

    return AgentSpec(
        name=name,
        description=description,
        output_kind=output_kind,
        output_schema=output_schema,
        components=tuple(names),
        editable=frozenset(editable),
        required_placeholders=tuple(required_placeholders),
        label_sets=label_sets,
        label_components=label_components,
        examples_component=examples_component,
    )


def _parse_label_sets(
    check: _Checker, value: Any, output_kind: str, output_schema: dict[str, Any] | None
) -> dict[str, tuple[str, ...]]:
    label_sets_value = check.mapping(value, "agent.label_sets")
    if output_schema is None:
        if label_sets_value:
            check.fail("agent.label_sets", f'expected {{}} for an output of kind "{output_kind}": a text agent has no label sets')
        return {}
    label_sets: dict[str, tuple[str, ...]] = {}
    for field, labels_value in label_sets_value.items():
        path = child("agent.label_sets", field)
        if field not in output_schema["properties"]:
            check.fail(path, f"{json.dumps(field)} is not a key of agent.output.schema.properties")
        labels = check.distinct_strings(labels_value, path, "label")
        if not labels:
            check.fail(path, "expected a non-empty list of labels")
        label_sets[field] = tuple(labels)
    return label_sets


def _check_label_lines(check: _Checker, component: str, path: str, field: str, labels: tuple[str, ...]) -> None:
    for label, found in text.label_line_indexes(component, labels).items():
        if len(found) != 1:
            problem = "has no line" if not found else f"has {len(found)} lines"
            check.fail(path, f'{problem} of the form "- {label}: <description>" for label {json.dumps(label)} of output field {json.dumps(field)}, expected exactly one')


def _check_prompt_id(check: _Checker, value: Any, path: str, search_round: int) -> str:
    """`incumbent`, or the id `r<k>c<n>` of a candidate proposed in an earlier round k."""
    prompt_id = check.string(value, path)
    if prompt_id == INCUMBENT_ID:
        return prompt_id
    match = _CANDIDATE_ID.match(prompt_id)
    if not match:
        check.fail(path, f'expected "{INCUMBENT_ID}" or a candidate id such as "r1c2", got {_describe(prompt_id)}')
    if int(match.group(1)) >= search_round:
        check.fail(path, f"{json.dumps(prompt_id)} is a candidate of round {match.group(1)}, but this is round {search_round}: only earlier rounds' candidates can have run")
    return prompt_id


def _parse_parents(
    check: _Checker, value: Any, incumbent: dict[str, str], agent: AgentSpec, search_round: int
) -> tuple[Parent, ...]:
    items = check.array(value, "parents")
    if not items:
        check.fail("parents", "empty list: give at least the incumbent to improve")
    parents: list[Parent] = []
    for index, item in enumerate(items):
        parent = _parse_prompt_ref(check, item, f"parents[{index}]", "parent", incumbent, agent, search_round)
        if any(earlier.id == parent.id for earlier in parents):
            check.fail(f"parents[{index}].id", f"duplicate parent id {json.dumps(parent.id)}")
        parents.append(parent)
    return tuple(parents)


def _parse_prompt_ref(
    check: _Checker, value: Any, path: str, role: str, incumbent: dict[str, str], agent: AgentSpec, search_round: int
) -> Parent:
    """`{id, components}` of the incumbent or an earlier round's candidate (a parent, a merge's ancestor)."""
    prompt = check.object(value, path, required=_PARENT_KEYS)
    prompt_id = _check_prompt_id(check, prompt["id"], child(path, "id"), search_round)
    # Every prompt of a search descends from the incumbent through edits of editable components only.
    components = _check_candidate_components(check, prompt["components"], child(path, "components"), incumbent, agent, (INCUMBENT_ID, incumbent))
    if prompt_id == INCUMBENT_ID and components != incumbent:
        check.fail(child(path, "components"), f'the {role} "incumbent" must have exactly the components of prompt.components')
    return Parent(prompt_id, dict(components))


def _parse_rollouts(
    check: _Checker, value: Any, agent: AgentSpec, parents: tuple[Parent, ...], search_round: int, *, need_runs: bool = True
) -> tuple[Rollout, ...]:
    items = check.array(value, "rollouts")
    if not items and need_runs:
        check.fail("rollouts", "empty list, there is nothing to learn from")
    rollouts: list[Rollout] = []
    seen_ids: set[str] = set()
    for index, item in enumerate(items):
        rollout = _parse_rollout(check, item, f"rollouts[{index}]", agent, search_round)
        if rollout.id in seen_ids:
            check.fail(f"rollouts[{index}].id", f"duplicate rollout id {json.dumps(rollout.id)}")
        seen_ids.add(rollout.id)
        rollouts.append(rollout)
    for index, parent in enumerate(parents if need_runs else ()):
        own = rollouts_of(rollouts, parent.id)
        if not own:
            check.fail(f"parents[{index}]", f"no rollout has prompt_id {json.dumps(parent.id)}: a parent is improved from its own runs")
        if all(rollout.reward is None for rollout in own):
            check.fail(f"parents[{index}]", f"no scored rollouts: every reward of the {len(own)} rollouts with prompt_id {json.dumps(parent.id)} is null")
    return tuple(rollouts)


def _parse_rollout(check: _Checker, value: Any, path: str, agent: AgentSpec, search_round: int) -> Rollout:
    rollout = check.object(value, path, required=_ROLLOUT_KEYS, optional=_ROLLOUT_OPTIONAL_KEYS)
    rollout_id = check.string(rollout["id"], child(path, "id"))
    task_id = rollout["task_id"]
    if task_id is not None:
        check.string(task_id, child(path, "task_id"))
    prompt_id = _check_prompt_id(check, rollout["prompt_id"], child(path, "prompt_id"), search_round)
    rollout_input = check.mapping(rollout["input"], child(path, "input"))
    message = check.string(rollout["message"], child(path, "message"), allow_empty=True)

    output = rollout["output"]
    if output is not None:
        check.mapping(output, child(path, "output"))
        if agent.is_text:
            if TEXT_FIELD not in output:
                check.fail(child(child(path, "output"), TEXT_FIELD), 'missing required key: a text agent\'s output is {"text": "..."}')
            check.string(output[TEXT_FIELD], child(child(path, "output"), TEXT_FIELD), allow_empty=True)

    expected = rollout.get("expected")
    if expected is not None:
        expected_path = child(path, "expected")
        check.mapping(expected, expected_path)
        for field, labels in agent.label_sets.items():
            if field in expected and expected[field] not in labels:
                allowed = ", ".join(json.dumps(option) for option in labels)
                check.fail(child(expected_path, field), f"expected one of {allowed}, got {_describe(expected[field])}")

    reward_value = rollout["reward"]
    reward = None if reward_value is None else check.number(reward_value, child(path, "reward"), -1, 1)

    rewards_path = child(path, "rewards")
    reasons: list[str] = []
    for index, scorer_reward in enumerate(check.array(rollout.get("rewards", []), rewards_path)):
        item_path = f"{rewards_path}[{index}]"
        check.object(scorer_reward, item_path, required=_SCORER_REWARD_KEYS, optional=["reason"])
        check.string(scorer_reward["scorer"], child(item_path, "scorer"))
        check.number(scorer_reward["value"], child(item_path, "value"), -1, 1)
        reason = check.optional_string(scorer_reward.get("reason"), child(item_path, "reason"))
        if reason:
            reasons.append(reason)

    tool_calls_path = child(path, "tool_calls")
    tool_calls: list[ToolCall] = []
    for index, call in enumerate(check.array(rollout.get("tool_calls", []), tool_calls_path)):
        item_path = f"{tool_calls_path}[{index}]"
        check.object(call, item_path, required=_TOOL_CALL_KEYS, optional=_TOOL_CALL_OPTIONAL_KEYS)
        tool_calls.append(
            ToolCall(
                name=check.string(call["name"], child(item_path, "name")),
                args=check.mapping(call["args"], child(item_path, "args")),
                result=json.dumps(call["result"], ensure_ascii=False) if "result" in call else None,
            )
        )

    return Rollout(
        id=rollout_id,
        task_id=task_id,
        prompt_id=prompt_id,
        input=rollout_input,
        message=message,
        output=output,
        expected=expected,
        reward=reward,
        reasons=tuple(reasons),
        error=check.optional_string(rollout.get("error"), child(path, "error")),
        tool_calls=tuple(tool_calls),
    )


# --- writing -----------------------------------------------------------------------------------


def rollout_stats(request: ProposeRequest) -> dict[str, int]:
    rollouts = request.rollouts
    return {
        "rollouts": len(rollouts),
        "scored": sum(rollout.reward is not None for rollout in rollouts),
        "failed": sum(rollout.output is None or rollout.error is not None for rollout in rollouts),
        "with_expected": sum(bool(rollout.expected) for rollout in rollouts),
    }


def build_output(request: ProposeRequest, proposal: Proposal) -> dict[str, Any]:
    scores = [candidate.train_score for candidate in proposal.candidates if candidate.train_score is not None]
    stats: dict[str, Any] = {
        **rollout_stats(request),
        "llm_calls": proposal.llm_calls,
        "rejected_edits": proposal.rejected_edits,
    }
    if proposal.note:
        stats["note"] = proposal.note
    return {
        "schema_version": CONTRACT_VERSION,
        "request_id": request.request_id,
        "algorithm": request.algorithm,
        "seed": request.seed,
        "round": request.round,
        "candidates": [
            {
                "id": candidate_id(request.round, index),
                "parent": candidate.parent,
                "strategy": candidate.strategy,
                "components": candidate.components,
                "rationale": candidate.rationale,
                "train_score": candidate.train_score,
            }
            for index, candidate in enumerate(proposal.candidates, start=1)
        ],
        "rounds": [{"round": request.round, "best_train_score": max(scores, default=None), "candidates": len(proposal.candidates)}],
        "stats": stats,
    }


def candidate_id(search_round: int, number: int) -> str:
    return f"r{search_round}c{number}"


def validate_output(output: Any, input_document: Any) -> None:
    """Checks an output document against contract v3 and the input it answers; raises ContractError."""
    request = parse_request(input_document)
    check = _Checker("output")
    check.object(output, "", required=_OUTPUT_KEYS)
    if output["schema_version"] != CONTRACT_VERSION or isinstance(output["schema_version"], bool):
        check.fail("schema_version", f"expected {CONTRACT_VERSION}, got {_describe(output['schema_version'])}")
    copied = (("request_id", request.request_id), ("algorithm", request.algorithm), ("seed", request.seed), ("round", request.round))
    for key, wanted in copied:
        if output[key] != wanted or isinstance(output[key], bool):
            check.fail(key, f"expected {_describe(wanted)} (copied from the input), got {_describe(output[key])}")

    candidates = check.array(output["candidates"], "candidates")
    if request.gepa is not None and len(candidates) > 1:
        check.fail("candidates", f"a gepa {request.gepa.step} step makes at most one child, got {len(candidates)}")
    per_parent_limit, limit_source = request.children_limit
    parents = {parent.id: parent for parent in request.parents}
    children: dict[str, int] = {parent.id: 0 for parent in request.parents}
    # A child must be new: not the incumbent, not any parent, not an earlier sibling.
    known: list[tuple[str, dict[str, str]]] = [(INCUMBENT_ID, request.components)]
    known += [(parent.id, parent.components) for parent in request.parents if parent.id != INCUMBENT_ID]
    for index, candidate_value in enumerate(candidates):
        path = f"candidates[{index}]"
        candidate = check.object(candidate_value, path, required=_CANDIDATE_KEYS)
        wanted_id = candidate_id(request.round, index + 1)
        if candidate["id"] != wanted_id:
            check.fail(child(path, "id"), f"expected {json.dumps(wanted_id)}, got {_describe(candidate['id'])}")
        parent_id = candidate["parent"]
        if parent_id not in children:
            check.fail(child(path, "parent"), f"expected the id of one of the request's parents, got {_describe(parent_id)}")
        children[parent_id] += 1
        if children[parent_id] > per_parent_limit:
            check.fail(child(path, "parent"), f"more than {limit_source} = {per_parent_limit} children of {json.dumps(parent_id)}")
        check.string(candidate["strategy"], child(path, "strategy"))
        check.string(candidate["rationale"], child(path, "rationale"))
        if candidate["train_score"] is not None:
            check.number(candidate["train_score"], child(path, "train_score"), 0, 1)
        parent_components = parents[parent_id].components
        components = _check_candidate_components(
            check, candidate["components"], child(path, "components"), request.components, request.agent, (parent_id, parent_components)
        )
        for known_id, known_components in known:
            if components == known_components:
                check.fail(child(path, "components"), f"identical to {json.dumps(known_id)}")
        known.append((wanted_id, components))

    rounds = check.array(output["rounds"], "rounds")
    if len(rounds) != 1:
        check.fail("rounds", f"expected exactly one entry, for round {request.round}, got {len(rounds)}")
    round_entry = check.object(rounds[0], "rounds[0]", required=_ROUND_KEYS)
    check.integer(round_entry["round"], "rounds[0].round", request.round, request.round)
    if round_entry["best_train_score"] is not None:
        check.number(round_entry["best_train_score"], "rounds[0].best_train_score", 0, 1)
    check.integer(round_entry["candidates"], "rounds[0].candidates", len(candidates), len(candidates))

    stats = check.object(output["stats"], "stats", required=_STATS_KEYS, optional=["note"])
    for key, wanted_count in rollout_stats(request).items():
        check.integer(stats[key], child("stats", key), wanted_count, wanted_count)
    most_calls = None if request.needs_llm else 0
    check.integer(stats["llm_calls"], "stats.llm_calls", 0, most_calls)
    check.integer(stats["rejected_edits"], "stats.rejected_edits", minimum=0)
    if "note" in stats:
        check.string(stats["note"], "stats.note")
    elif not candidates:
        check.fail("stats", "missing key note: it must say why there are no candidates")


def _check_candidate_components(
    check: _Checker,
    value: Any,
    path: str,
    incumbent: Mapping[str, str],
    agent: AgentSpec,
    base: tuple[str, Mapping[str, str]],
) -> dict[str, str]:
    """A prompt derived from `base` (id, components): the incumbent's component names, placeholders and label lines.

    Non-editable components equal the base's byte for byte, and no placeholder of the incumbent's or
    the base's component is lost.
    """
    base_id, base_components = base
    components = check.object(value, path, required=incumbent.keys())
    for name, original in incumbent.items():
        component_path = child(path, name)
        component = check.string(components[name], component_path, allow_empty=not original)
        if name not in agent.editable and component != base_components[name]:
            check.fail(component_path, f"not in agent.editable, so it must equal the component of {json.dumps(base_id)} byte for byte")
        lost = (text.placeholders(original) | text.placeholders(base_components[name])) - text.placeholders(component)
        if lost:
            check.fail(component_path, "lost placeholder(s) " + ", ".join("{{" + placeholder + "}}" for placeholder in sorted(lost)))
    if agent.examples_component is not None and text.placeholders(components[agent.examples_component]):
        check.fail(child(path, agent.examples_component), "the examples component must not contain placeholders")
    for field, component_name in agent.label_components.items():
        _check_label_lines(check, components[component_name], child(path, component_name), field, agent.label_sets[field])
    return components


# --- paths and messages --------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


def child(path: str, key: str) -> str:
    """The JSON path of `key` inside the object at `path`, e.g. `rollouts[3].reward`."""
    if not _PLAIN_KEY.match(key):
        return f"{path}[{json.dumps(key, ensure_ascii=False)}]"
    return f"{path}.{key}" if path else key


def _range_text(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    return ""


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= 60 else shown[:57] + "..."
