"""Demonstrations: message/answer pairs bootstrapped from scored rollouts, for any agent's output.

The one piece of code for demonstrations, shared by `few-shot` and `llm-free`. The examples component
holds them in the contract's demonstration format, which the TypeScript side reads too:

    Examples:

    <message collapsed to one line>
    Answer: <answer>

    <message>
    Answer: <answer>

`<answer>` is compact JSON in the output schema's property order for structured agents, and the text
collapsed to one line for text agents.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agl_optimizer import text
from agl_optimizer.contract import INCUMBENT_ID, TEXT_FIELD, AgentSpec, ProposeRequest, Rollout, rollouts_of, same_json, stable_order

EXAMPLES_HEADER = "Examples:"
ANSWER_PREFIX = "Answer: "
# The TypeScript side refuses a component over 16,000 characters; demonstrations stop well below.
MAX_EXAMPLES_CHARS = 12_000
# Messages may be whole documents: one that long would crowd out every other demonstration.
MAX_DEMONSTRATION_CHARS = 2_000
# A word in more than this share of the messages (a constant "Post:" lead, a greeting) says nothing
# about which messages are alike.
COMMON_WORD_SHARE = 0.5
MIN_MESSAGES_FOR_COMMON_WORDS = 4
# Shared words that make a demonstration "about" a run's message, for the repair of misleading examples.
MIN_SHARED_WORDS = 2
PERFECT_REWARD = 1.0

SOURCE_GROUND_TRUTH = "ground truth"
SOURCE_OWN_ANSWER = "the agent's own answer"
SOURCE_SHOWN = "shown by the parent"

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


@dataclass(frozen=True)
class Demonstration:
    message: str  # collapsed to one line
    answer: str  # as rendered after `Answer: `
    values: Mapping[str, Any] = field(compare=False)  # the answer by field (text agents: {"text": answer})
    source: str = field(compare=False)  # SOURCE_*: where the answer came from
    features: frozenset[tuple[str, str]] = field(compare=False)  # what the answer shows, for covering variety

    @property
    def signature(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(self.features))

    def render(self) -> str:
        return f"{self.message}\n{ANSWER_PREFIX}{self.answer}"


@dataclass(frozen=True)
class Pool:
    """The demonstrable runs of the training evidence, and why there are none if there are none."""

    demonstrations: tuple[Demonstration, ...]
    threshold: float | None  # the lowest reward a demonstrated run has
    problem: str | None


@dataclass(frozen=True)
class ExamplesEdit:
    name: str
    demonstrations: tuple[Demonstration, ...]
    dropped: tuple[Demonstration, ...] = ()  # misleading examples a repair removed
    added: tuple[Demonstration, ...] = ()  # corrections a repair added


def training_evidence(request: ProposeRequest) -> tuple[Rollout, ...]:
    """The rollouts whose messages and answers may go into a prompt: the incumbent's, else all of them.

    A candidate's own rollouts are the runs the workflow scores it by; they say where a parent goes wrong
    (which labels it confuses, which examples mislead it), but copying their messages or words into its
    children would let the children fit the very tasks they are then judged on.
    """
    return rollouts_of(request.rollouts, INCUMBENT_ID) or request.rollouts


# --- building ------------------------------------------------------------------------------------


def demonstration(message: str, values: Mapping[str, Any], agent: AgentSpec, source: str) -> Demonstration | None:
    """The demonstration of `values` answering `message`, or None when it cannot be shown in the format."""
    one_line = text.one_line(message)
    if agent.is_text:
        answer = text.one_line(str(values.get(TEXT_FIELD, "")))
        values = {TEXT_FIELD: answer}
    else:
        answer = json.dumps(dict(values), ensure_ascii=False)
    built = Demonstration(one_line, answer, values, source, _features(values, agent))
    rendered = built.render()
    # A message that looks like a placeholder would be substituted by the prompt engine.
    if not one_line or not answer or text.placeholders(rendered) or len(rendered) > MAX_DEMONSTRATION_CHARS:
        return None
    return built


def answer_of(rollout: Rollout, agent: AgentSpec, trust_output: bool) -> tuple[dict[str, Any], str] | None:
    """What a run demonstrates, and where that answer comes from; None when it has no answer to show.

    Structured agents: the ground truth when `expected` covers every required field, else (with
    `trust_output`) the run's own output when it has every required field, fits the schema's types and
    labels and does not contradict a partial `expected`. Text agents: the run's own text (with `trust_output`).
    """
    output = rollout.output
    usable_output = trust_output and output is not None and rollout.error is None
    if agent.is_text:
        return ({TEXT_FIELD: output[TEXT_FIELD]}, SOURCE_OWN_ANSWER) if usable_output and output is not None else None
    expected = rollout.expected or {}
    truth = _in_schema_order(expected, agent)
    if truth and all(name in expected for name in agent.required_fields):
        return truth, SOURCE_GROUND_TRUTH
    if not usable_output or output is None:
        return None
    answer = _in_schema_order(output, agent)
    if not answer or any(name not in answer for name in agent.required_fields):
        return None
    if any(name not in output or not same_json(output[name], value) for name, value in expected.items()):
        return None
    if not all(_fits(agent, name, value) for name, value in answer.items()):
        return None
    return answer, SOURCE_OWN_ANSWER


def _in_schema_order(values: Mapping[str, Any], agent: AgentSpec) -> dict[str, Any]:
    return {name: values[name] for name in agent.fields if name in values}


def _fits(agent: AgentSpec, name: str, value: Any) -> bool:
    """`value` has the field's label, and fits the type, enum and alternatives its schema names where it names them."""
    if name in agent.label_sets and value not in agent.label_sets[name]:
        return False
    return _fits_schema(value, (agent.output_schema or {}).get("properties", {}).get(name))


def _fits_schema(value: Any, schema: Any) -> bool:
    if not isinstance(schema, dict):
        return True
    alternatives = schema.get("anyOf", schema.get("oneOf"))
    if isinstance(alternatives, list) and alternatives and not any(_fits_schema(value, alternative) for alternative in alternatives):
        return False
    options = schema.get("enum")
    if isinstance(options, list) and not any(same_json(value, option) for option in options):
        return False
    types = schema.get("type")
    names = [types] if isinstance(types, str) else types if isinstance(types, list) else []
    return not names or any(_is_json_type(value, type_name) for type_name in names)


def _is_json_type(value: Any, type_name: Any) -> bool:
    kinds = _JSON_TYPES.get(type_name) if isinstance(type_name, str) else None
    if kinds is None:
        return True
    if isinstance(value, bool) and type_name != "boolean":
        return False
    if type_name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, kinds)


def _features(values: Mapping[str, Any], agent: AgentSpec) -> frozenset[tuple[str, str]]:
    """What an answer shows: each label, and for other fields whether the value is absent, null, empty, one or many."""
    if agent.is_text:
        return frozenset()
    return frozenset((name, _feature(agent, name, values)) for name in agent.fields)


def _feature(agent: AgentSpec, name: str, values: Mapping[str, Any]) -> str:
    if name not in values:
        return "absent"
    value = values[name]
    if name in agent.label_sets:
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, (str, list, dict)) and not value:
        return "empty"
    if isinstance(value, list):
        return "one" if len(value) == 1 else "many"
    return "value"


def demonstration_pool(rollouts: Sequence[Rollout], agent: AgentSpec) -> Pool:
    """Distinct messages of the top-reward runs with an answer to show, best first in a cycle-independent order.

    Top reward: 1.0 when some run reached it, else the top quartile of the rewards above 0.
    """
    scored = sorted((rollout for rollout in rollouts if rollout.reward is not None and rollout.output is not None), key=stable_order)
    if not scored:
        return Pool((), None, "no scored rollout has an output to demonstrate")
    rewards = sorted((rollout.reward for rollout in scored if rollout.reward is not None), reverse=True)
    if rewards[0] <= 0:
        return Pool((), None, f"the best reward of a run with output is {rewards[0]:g}, nothing worth demonstrating")
    threshold = PERFECT_REWARD if rewards[0] >= PERFECT_REWARD else rewards[math.ceil(len(rewards) / 4) - 1]

    pool: dict[str, Demonstration] = {}
    for rollout in scored:
        if rollout.reward is None or rollout.reward < threshold or rollout.reward <= 0:
            continue
        answer = answer_of(rollout, agent, trust_output=True)
        built = demonstration(rollout.message, answer[0], agent, answer[1]) if answer else None
        if built and built.message not in pool:
            pool[built.message] = built
    if not pool:
        return Pool((), threshold, "no top-reward run has a complete answer to demonstrate")
    return Pool(tuple(pool.values()), threshold, None)


def ground_truth_demonstrations(rollouts: Sequence[Rollout], agent: AgentSpec) -> tuple[Demonstration, ...]:
    """A demonstration per distinct message with a complete ground truth, whatever the run's reward."""
    found: dict[str, Demonstration] = {}
    for rollout in sorted(rollouts, key=stable_order):
        answer = answer_of(rollout, agent, trust_output=False)
        built = demonstration(rollout.message, answer[0], agent, answer[1]) if answer else None
        if built and built.message not in found:
            found[built.message] = built
    return tuple(found.values())


# --- choosing and writing ------------------------------------------------------------------------


def select_demonstrations(
    pool: Sequence[Demonstration], limit: int, rng: random.Random, avoid: frozenset[str]
) -> tuple[Demonstration, ...]:
    """Greedy: unused answer signatures first, then new features, then messages not in `avoid`, then the seeded draw.

    Stops at `limit` demonstrations or when the next would take the component over MAX_EXAMPLES_CHARS.
    """
    tiebreak = {demonstration.message: rng.random() for demonstration in pool}
    chosen: list[Demonstration] = []
    covered: set[tuple[str, str]] = set()
    signature_uses: Counter[tuple[tuple[str, str], ...]] = Counter()

    def preference(demonstration: Demonstration) -> tuple[int, int, bool, float]:
        return (
            signature_uses[demonstration.signature],
            -len(demonstration.features - covered),
            demonstration.message in avoid,
            tiebreak[demonstration.message],
        )

    remaining = list(pool)
    while remaining and len(chosen) < limit:
        best = min(remaining, key=preference)
        remaining.remove(best)
        if len(render_examples((*chosen, best))) > MAX_EXAMPLES_CHARS:
            continue
        chosen.append(best)
        covered.update(best.features)
        signature_uses[best.signature] += 1
    return tuple(chosen)


def render_examples(demonstrations: Sequence[Demonstration]) -> str:
    return f"{EXAMPLES_HEADER}\n\n" + "\n\n".join(demonstration.render() for demonstration in demonstrations)


def parse_examples(component: str, agent: AgentSpec) -> tuple[Demonstration, ...] | None:
    """The demonstrations of an examples component in the demonstration format; None for any other text.

    The v2 layout (no blank line after the header) is read too, so a prompt written before v3 is repaired.
    """
    if not component.startswith(f"{EXAMPLES_HEADER}\n"):
        return None
    body = component.removeprefix(EXAMPLES_HEADER).strip("\n")
    demonstrations: list[Demonstration] = []
    for block in body.split("\n\n") if body else ():
        lines = block.split("\n")
        if len(lines) != 2 or not lines[1].startswith(ANSWER_PREFIX):
            return None
        answer = lines[1].removeprefix(ANSWER_PREFIX)
        if agent.is_text:
            values: dict[str, Any] = {TEXT_FIELD: answer}
        else:
            try:
                values = json.loads(answer)
            except json.JSONDecodeError:
                return None
            if not isinstance(values, dict) or any(name not in agent.fields for name in values):
                return None
        demonstrations.append(Demonstration(lines[0], answer, values, SOURCE_SHOWN, _features(values, agent)))
    return tuple(demonstrations) or None


# --- repairing -----------------------------------------------------------------------------------


class Similarity:
    """Which messages are alike: the words they share, without the words most messages have."""

    def __init__(self, messages: Iterable[str]) -> None:
        distinct = {text.one_line(message) for message in messages}
        counts: Counter[str] = Counter(word for message in distinct for word in text.token_set(message))
        enough = len(distinct) >= MIN_MESSAGES_FOR_COMMON_WORDS
        self.common = frozenset(word for word, count in counts.items() if enough and count > COMMON_WORD_SHARE * len(distinct))

    def words(self, message: str) -> frozenset[str]:
        return text.token_set(text.one_line(message)) - self.common


def repair_examples(
    shown: Sequence[Demonstration],
    own: Sequence[Rollout],
    corrections_from: Sequence[Demonstration],
    agent: AgentSpec,
    limit: int,
    rng: random.Random,
    similarity: Similarity,
) -> ExamplesEdit | None:
    """Drops examples that pulled the parent towards its wrong answers and adds corrections.

    A run the parent got wrong is one whose output differs from an expected field (and whose reward is
    below 1). An example misleads when it shares words with such a run's message and gives the same
    wrong value on a field the run missed. A correction is a training demonstration (from
    `corrections_from`) that shares words with such a message and shows what the run missed: the
    expected label of a label field, or any value of another field. None when nothing changes.
    """
    # (run the parent got wrong, its message's words, the fields it missed)
    wrong = [
        (rollout, similarity.words(rollout.message), missed)
        for rollout in sorted(own, key=stable_order)
        if (missed := rollout.missed_fields) and (rollout.reward is None or rollout.reward < PERFECT_REWARD)
    ]
    if not wrong:
        return None

    def misleading(demonstration: Demonstration) -> bool:
        words = similarity.words(demonstration.message)
        return any(
            len(words & wrong_words) >= MIN_SHARED_WORDS
            and rollout.output is not None
            and any(name in rollout.output and name in demonstration.values and same_json(demonstration.values[name], rollout.output[name]) for name in missed)
            for rollout, wrong_words, missed in wrong
        )

    def shows_what_was_missed(demonstration: Demonstration, rollout: Rollout, missed: frozenset[str]) -> bool:
        expected = rollout.expected or {}
        return any(
            name in demonstration.values and (name not in agent.label_sets or same_json(demonstration.values[name], expected[name]))
            for name in missed
        )

    def relevance(demonstration: Demonstration) -> int:
        words = similarity.words(demonstration.message)
        return max(
            (len(words & wrong_words) for rollout, wrong_words, missed in wrong if shows_what_was_missed(demonstration, rollout, missed)),
            default=0,
        )

    dropped = tuple(demonstration for demonstration in shown if misleading(demonstration))
    kept = [demonstration for demonstration in shown if demonstration not in dropped][:limit]
    kept_messages = {demonstration.message for demonstration in kept}
    ranked: dict[str, tuple[int, float, Demonstration]] = {}
    for candidate in corrections_from:
        if candidate.message in kept_messages or candidate.message in ranked:
            continue
        shared = relevance(candidate)
        if shared >= MIN_SHARED_WORDS:
            ranked[candidate.message] = (-shared, rng.random(), candidate)
    added: list[Demonstration] = []
    for _, _, candidate in sorted(ranked.values(), key=lambda entry: entry[:2]):
        if len(kept) + len(added) >= limit:
            break
        if len(render_examples((*kept, *added, candidate))) <= MAX_EXAMPLES_CHARS:
            added.append(candidate)
    if not dropped and not added:
        return None
    return ExamplesEdit("examples-repaired", (*kept, *added), dropped, tuple(added))


def describe_sources(demonstrations: Sequence[Demonstration]) -> str:
    """`4 with their ground truth, 2 with the agent's own answer`, for rationales."""
    counts = Counter(demonstration.source for demonstration in demonstrations)
    return ", ".join(f"{count} with {source}" for source, count in counts.items())
