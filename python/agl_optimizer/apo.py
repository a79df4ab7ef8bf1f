"""The "apo" algorithm: textual gradients in the style of ProTeGi, as Agent Lightning's APO uses them.

For each parent and each of `branch_factor` branches: sample a minibatch of the parent's low-reward
rollouts (seeded), ask the LLM for a critique of the prompt (the "textual gradient": what in it made
these answers wrong), then ask it to apply the critique as an edit of one editable component. The
workflow scores the children and keeps the beam; this call is one round.

Branches rotate through three kinds of edit, each only where the agent allows it:
- "description": a new description for the label the minibatch missed most, on that label's
  `- <label>:` line of an editable label component (a keyword suffix learned earlier stays);
- "rule": one sentence appended as a `Learned rule:` line to an editable free-text component
  (neither a label component nor the examples component; the newest MAX_RULES are kept);
- "rewrite": the whole free-text component, written anew by the LLM.
Small local models write poor prompts, so every edit is checked before it becomes a child: a short
edit must be one sensible line, a rewrite must keep exactly the component's placeholders, stay within
a size bound, not loop, not copy the runs and change something. A rejected edit is counted and the
parent gets fewer children rather than an invalid one.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agl_optimizer import text
from agl_optimizer.contract import (
    TEXT_FIELD,
    AgentSpec,
    Candidate,
    Parent,
    Progress,
    Proposal,
    ProposeRequest,
    Rollout,
    refusal,
    stable_order,
)
from agl_optimizer.llm_client import ChatClient, ChatMessage
from agl_optimizer.proxy import keyword_overlap_accuracy

KINDS = ("description", "rule", "rewrite")
MAX_RULES = 3
DESCRIPTION_MAX_WORDS = 30
RULE_MAX_WORDS = 40
MAX_EDIT_CHARS = 300
MIN_EDIT_WORDS = 2
# A content word this often in one short edit is a degenerate loop, which small models fall into at temperature 0.
MAX_WORD_REPEATS = 4
# A rewrite keeps at least this share of the component's words (less is a truncated or lazy answer)...
REWRITE_MIN_WORD_SHARE = 0.5
# ...and at most this many times its characters plus some slack for a short component, within the
# TypeScript side's limit for one component.
REWRITE_MAX_GROWTH = 2
REWRITE_SLACK_CHARS = 400
MAX_COMPONENT_CHARS = 16_000
# A rewrite loops when a line of a few words comes back this often, or a 4-word phrase this much more
# often than in the component it replaces.
MAX_LINE_REPEATS = 3
PHRASE_WORDS = 4
# Copying a message of the runs into the prompt would fit the prompt to the tasks it is judged on:
# an edit may not contain a run of this many words of one (all of a shorter message of at least
# MIN_COPIED_WORDS words) that the component did not have already.
COPIED_WORDS = 8
MIN_COPIED_WORDS = 4
MESSAGE_EXCERPT_CHARS = 280
ANSWER_EXCERPT_CHARS = 280
TOOL_EXCERPT_CHARS = 80
MAX_TOOL_CALLS_SHOWN = 3
CRITIQUE_EXCERPT_CHARS = 800
RATIONALE_CRITIQUE_CHARS = 240
PERFECT_REWARD = 1.0

_FENCE = re.compile(r"^```[\w-]*\n?|\n?```$")
_EDIT_LEAD = re.compile(r"^(?:[-*]\s*)?(?:(?:new|learned|the)\s+)?(?:description|rule)(?:\s+(?:of|for)\s+[\w-]+)?\s*:\s*", re.IGNORECASE)
_ANNOUNCEMENT = re.compile(r"^(?:here|sure|okay|ok|certainly|below)\b.*:$", re.IGNORECASE)
_QUOTES = "\"'`*“”‘’"
FENCE_QUOTES = '"""'
_ECHO = re.compile(r"\b(?:post|message|expected):|\banswered\b.*\bexpected\b", re.IGNORECASE)
_ECHO_LINE = re.compile(r"^\s*(?:-\s*)?(?:message|expected|reward|tool calls):", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Target:
    """What one branch edits: a label's description, or a free-text component (a rule or a rewrite)."""

    kind: str  # one of KINDS
    component: str
    field: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class Edit:
    text: str | None
    problem: str | None  # why the text was rejected


def check_applicable(request: ProposeRequest) -> None:
    """Refuses (bad input) an agent with no component apo may edit."""
    agent = request.agent
    if agent.editable_label_components or agent.free_text_components:
        return
    editable = ", ".join(sorted(agent.editable)) or "nothing"
    raise refusal(
        "apo",
        "it edits label descriptions or free-text components, but the agent has no editable label component and no"
        f" editable free-text component (one that is neither a label component nor the examples component); agent.editable is: {editable}",
    )


def progress_steps(request: ProposeRequest) -> int:
    return len(request.parents) * request.params["branch_factor"] + 1


def propose(request: ProposeRequest, progress: Progress) -> Proposal:
    """Proposes up to params.branch_factor children per parent; reports progress_steps(request) steps."""
    assert request.llm is not None, "parse_request refuses apo without llm"
    client = ChatClient(request.llm)
    branch_factor = request.params["branch_factor"]
    seen: list[dict[str, str]] = [request.components, *(parent.components for parent in request.parents)]
    candidates: list[Candidate] = []
    notes: list[str] = []
    rejected = 0

    for parent in request.parents:
        rng = request.rng_for(parent)
        own = sorted(request.rollouts_of(parent), key=stable_order)
        low = [rollout for rollout in own if rollout.reward is not None and rollout.reward < PERFECT_REWARD]
        free_text = free_text_component(request.agent, parent.components)
        reason = None
        if not low:
            reason = f"every scored rollout has reward {PERFECT_REWARD:g}, nothing to critique"
        elif not request.agent.editable_label_components and free_text is None:
            reason = "every editable free-text component is empty and there are no editable label descriptions"
        if reason:
            notes.append(f"{parent.id}: no children: {reason}")
            for branch in range(branch_factor):
                progress(f"{parent.id} branch {branch + 1}: skipped, {reason}")
            continue

        problems: list[str] = []
        kinds = edit_kinds(request.agent, free_text)
        for branch in range(branch_factor):
            minibatch = sorted(rng.sample(low, min(request.params["minibatch_size"], len(low))), key=stable_order)
            target = choose_target(request.agent, minibatch, free_text, kinds[branch % len(kinds)], rng)
            outcome = _branch(request, client, parent, own, minibatch, target, seen)
            if isinstance(outcome, Candidate):
                seen.append(outcome.components)
                candidates.append(outcome)
                progress(f"{parent.id} branch {branch + 1}: {outcome.strategy} edit accepted")
            else:
                problems.append(outcome.problem)
                rejected += outcome.rejected
                progress(f"{parent.id} branch {branch + 1}: no child, {outcome.problem}")
        if problems:
            children = branch_factor - len(problems)
            notes.append(f"{parent.id}: {children} of {branch_factor} branches gave a child; {'; '.join(problems)}")

    progress(f"{len(candidates)} children from {client.calls} LLM calls")
    return Proposal(tuple(candidates), " | ".join(notes) or None, llm_calls=client.calls, rejected_edits=rejected)


@dataclass(frozen=True)
class NoChild:
    problem: str
    rejected: bool  # the LLM's text was unusable (counted in stats.rejected_edits), not a branch with nothing to ask


def _branch(
    request: ProposeRequest,
    client: ChatClient,
    parent: Parent,
    own: Sequence[Rollout],
    minibatch: Sequence[Rollout],
    target: Target | None,
    seen: list[dict[str, str]],
) -> Candidate | NoChild:
    """One critique and one edit of the parent."""
    if target is None:
        return NoChild("no editable label description explains the minibatch's errors and there is no free-text component", rejected=False)
    agent = request.agent
    max_tokens = request.params["max_tokens"]
    critique = _clean_critique(client.complete(critique_messages(agent, parent, minibatch), max_tokens))
    if not critique:
        return NoChild("empty critique", rejected=True)
    answer = client.complete(edit_messages(agent, parent, target, minibatch, critique), max_tokens)
    if target.kind == "rewrite":
        edit = clean_rewrite(answer, parent.components[target.component], minibatch)
    else:
        edit = clean_edit(answer, target, parent.components, minibatch)
    if edit.text is None:
        return NoChild(f"{target.kind} edit rejected: {edit.problem}", rejected=True)
    components = _apply(parent.components, target, edit.text)
    if components in seen:
        return NoChild(f"{target.kind} edit rejected: the same edit as another candidate", rejected=True)
    return Candidate(
        parent=parent.id,
        strategy=_strategy(target),
        components=components,
        rationale=_rationale(parent, target, minibatch, critique, edit.text),
        train_score=keyword_overlap_accuracy(agent, components, own),
    )


def _strategy(target: Target) -> str:
    if target.kind == "description":
        return f"apo-description:{target.field}.{target.label}"
    if target.kind == "rewrite":
        return f"apo-rewrite:{target.component}"
    return "apo-rule"


# --- what to edit --------------------------------------------------------------------------------


def free_text_component(agent: AgentSpec, components: dict[str, str]) -> str | None:
    """The editable free-text component rules and rewrites go to: a non-empty root (such as instructions) first."""
    roots = set(text.unreferenced_components(components))
    eligible = [name for name in agent.free_text_components if components[name].strip()]
    ordered = [name for name in eligible if name in roots] + [name for name in eligible if name not in roots]
    return ordered[0] if ordered else None


def edit_kinds(agent: AgentSpec, free_text: str | None) -> tuple[str, ...]:
    """The kinds of edit branches rotate through for this agent, in KINDS' order."""
    return tuple(
        kind for kind in KINDS if (agent.editable_label_components if kind == "description" else free_text is not None)
    )


def choose_target(
    agent: AgentSpec, minibatch: Sequence[Rollout], free_text: str | None, wanted: str, rng: random.Random
) -> Target | None:
    """The `wanted` kind of edit if it is possible, else the next possible kind in KINDS' order.

    A description edit targets the editable label the minibatch missed most (ties drawn by the seeded RNG).
    """
    misses: Counter[tuple[str, str]] = Counter()
    for rollout in minibatch:
        misses.update((field, label) for field, label in agent.missed_labels(rollout) if field in agent.editable_label_components)
    possible: dict[str, Target] = {}
    if misses:
        most = max(misses.values())
        field, label = rng.choice(sorted(key for key, count in misses.items() if count == most))
        possible["description"] = Target("description", agent.label_components[field], field, label)
    if free_text is not None:
        possible["rule"] = Target("rule", free_text)
        possible["rewrite"] = Target("rewrite", free_text)
    start = KINDS.index(wanted)
    for kind in KINDS[start:] + KINDS[:start]:
        if kind in possible:
            return possible[kind]
    return None


# --- prompts -------------------------------------------------------------------------------------


# Short, concrete prompts: a 135M-parameter local model loses the thread in long ones.
CRITIC_SYSTEM = "You are a careful reviewer of an AI agent's instructions."
DESCRIPTION_SYSTEM = "You write short label descriptions for an AI agent's instructions."
RULE_SYSTEM = "You improve an AI agent's instructions with short rules."
REWRITE_SYSTEM = "You rewrite one part of an AI agent's instructions so that it stops making mistakes."


def critique_messages(agent: AgentSpec, parent: Parent, minibatch: Sequence[Rollout]) -> list[ChatMessage]:
    return [
        ChatMessage("system", CRITIC_SYSTEM),
        ChatMessage(
            "user",
            f"{_instructions(agent, parent)}\n\n"
            f"It did badly on these runs:\n{describe_runs(agent, minibatch)}\n\n"
            "In one or two sentences, what in the instructions made these answers wrong?",
        ),
    ]


def edit_messages(
    agent: AgentSpec, parent: Parent, target: Target, minibatch: Sequence[Rollout], critique: str
) -> list[ChatMessage]:
    if target.kind == "rule":
        return [
            ChatMessage("system", RULE_SYSTEM),
            ChatMessage(
                "user",
                f"{_instructions(agent, parent)}\n\n"
                f"Reviewer's note on its mistakes: {critique}\n\n"
                "Write one short rule, in one sentence, to add to the instructions so that the agent stops making"
                " these mistakes. Reply with the rule only.",
            ),
        ]
    if target.kind == "rewrite":
        current = parent.components[target.component]
        placeholders = ", ".join("{{" + name + "}}" for name in sorted(text.placeholders(current)))
        keep = f" Keep every placeholder exactly as written ({placeholders})." if placeholders else " Do not add placeholders in double braces."
        return [
            ChatMessage("system", REWRITE_SYSTEM),
            ChatMessage(
                "user",
                f"{_instructions(agent, parent)}\n\n"
                f"Reviewer's note on its mistakes: {critique}\n\n"
                f'Rewrite the part "{target.component}" of these instructions so that the agent stops making these mistakes.'
                f"{keep} Keep about the same length. Reply with the new text of the part only.\n\n"
                f'The part "{target.component}" reads now:\n{FENCE_QUOTES}\n{current}\n{FENCE_QUOTES}',
            ),
        ]
    assert target.field is not None and target.label is not None
    line = text.label_lines(parent.components[target.component], [target.label])[target.label]
    others = [label for label in agent.label_sets[target.field] if label != target.label]
    missed = [_excerpt(rollout.message, MESSAGE_EXCERPT_CHARS) for rollout in minibatch if (target.field, target.label) in agent.missed_labels(rollout)]
    return [
        ChatMessage("system", DESCRIPTION_SYSTEM),
        ChatMessage(
            "user",
            f'These messages should get the {target.field} "{target.label}", but the agent answered otherwise:\n'
            + "\n".join(f"- {message}" for message in missed)
            + f"\n\nCurrent description of {target.label}: {text.description_of(line)}\n"
            f"Other labels: {', '.join(others)}\n"
            f"Reviewer's note: {critique}\n\n"
            f"Write a better description of {target.label} in one short sentence that covers these messages."
            " Reply with the description only.",
        ),
    ]


def _instructions(agent: AgentSpec, parent: Parent) -> str:
    about = f"The agent {agent.name}: {agent.description}\n\n" if agent.description.strip() else ""
    return f"{about}The agent's instructions:\n{FENCE_QUOTES}\n{text.render(parent.components)}\n{FENCE_QUOTES}"


def describe_runs(agent: AgentSpec, minibatch: Sequence[Rollout]) -> str:
    """One entry per run: the message, its answer, the expected value, the tool calls and the reward with its reasons."""
    entries = []
    for rollout in minibatch:
        lines = [f'- Message: "{_excerpt(rollout.message, MESSAGE_EXCERPT_CHARS)}"']
        if rollout.output is None:
            lines.append(f"  No answer: {rollout.error or 'the run failed'}")
        else:
            lines.append(f"  Answer: {_shown_value(agent, rollout.output)}")
        if rollout.expected:
            lines.append(f"  Expected: {_shown_value(agent, rollout.expected)}")
        if rollout.tool_calls:
            calls = [
                f"{call.name}({_excerpt(json.dumps(call.args, ensure_ascii=False), TOOL_EXCERPT_CHARS)})"
                + (f" -> {_excerpt(call.result, TOOL_EXCERPT_CHARS)}" if call.result is not None else "")
                for call in rollout.tool_calls[:MAX_TOOL_CALLS_SHOWN]
            ]
            more = len(rollout.tool_calls) - MAX_TOOL_CALLS_SHOWN
            lines.append(f"  Tool calls: {'; '.join(calls)}" + (f" (+{more} more)" if more > 0 else ""))
        reasons = f" ({'; '.join(rollout.reasons)})" if rollout.reasons else ""
        lines.append(f"  Reward: {rollout.reward:g}{reasons}")
        entries.append("\n".join(lines))
    return "\n".join(entries)


def _shown_value(agent: AgentSpec, value: dict[str, Any]) -> str:
    """A text agent's {"text": ...} as quoted text, anything else as compact JSON."""
    if agent.is_text and list(value) == [TEXT_FIELD] and isinstance(value[TEXT_FIELD], str):
        return f'"{_excerpt(value[TEXT_FIELD], ANSWER_EXCERPT_CHARS)}"'
    return _excerpt(json.dumps(value, ensure_ascii=False), ANSWER_EXCERPT_CHARS)


def _excerpt(shown: str, limit: int) -> str:
    shown = text.one_line(shown)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


# --- checking and applying an edit ---------------------------------------------------------------


def _clean_critique(raw: str) -> str:
    return _excerpt(_FENCE.sub("", raw.strip()), CRITIQUE_EXCERPT_CHARS)


def _copies_a_message(candidate: str, minibatch: Sequence[Rollout], current: str = "") -> bool:
    """The edit holds COPIED_WORDS words in a row of a run's message that `current` did not have."""
    for rollout in minibatch:
        words = len(text.words(rollout.message))
        if words < MIN_COPIED_WORDS:
            continue
        size = min(COPIED_WORDS, words)
        if (_runs_of_words(rollout.message, size) & _runs_of_words(candidate, size)) - _runs_of_words(current, size):
            return True
    return False


def _runs_of_words(passage: str, size: int) -> set[str]:
    words = [word.casefold() for word in text.words(passage)]
    return {" ".join(words[index : index + size]) for index in range(len(words) - size + 1)}


def clean_edit(raw: str, target: Target, components: dict[str, str], minibatch: Sequence[Rollout] = ()) -> Edit:
    """A description or rule: the LLM's text reduced to one line, or the reason it cannot go into the prompt."""
    lines = [line.strip() for line in _FENCE.sub("", raw.strip()).split("\n") if line.strip()]
    # A chatty model announces its answer ("Here is the rule:") on a line of its own.
    while len(lines) > 1 and lines[0].endswith(":"):
        lines.pop(0)
    if not lines:
        return Edit(None, "empty")
    candidate = _EDIT_LEAD.sub("", lines[0].strip(_QUOTES + " ")).strip(_QUOTES + " ")
    if target.label is not None:
        candidate = re.sub(rf"^(?:[-*]\s*)?{re.escape(target.label)}\s*:\s*", "", candidate, flags=re.IGNORECASE)
    candidate = text.one_line(candidate.strip(_QUOTES + " "))
    limit = DESCRIPTION_MAX_WORDS if target.kind == "description" else RULE_MAX_WORDS
    words = text.words(candidate)
    repeated = Counter(text.tokenize(candidate)).most_common(1)
    if not candidate:
        return Edit(None, "empty")
    if candidate[0] in "{[":
        return Edit(None, f"JSON, not text: {_excerpt(candidate, 60)}")
    if "{{" in candidate or "}}" in candidate:
        return Edit(None, "contains placeholder braces")
    if len(words) < MIN_EDIT_WORDS:
        return Edit(None, f"too short: {candidate!r}")
    if len(words) > limit or len(candidate) > MAX_EDIT_CHARS:
        return Edit(None, f"too long ({len(words)} words, {len(candidate)} characters)")
    if repeated and repeated[0][1] >= MAX_WORD_REPEATS:
        return Edit(None, f"repetitive ({repeated[0][0]!r} {repeated[0][1]} times)")
    if _ECHO.search(candidate) or _copies_a_message(candidate, minibatch, components[target.component]):
        return Edit(None, "echoes the runs instead of answering")
    if target.kind == "description" and target.label is not None:
        current = text.label_lines(components[target.component], [target.label])[target.label]
        if candidate.casefold() == text.description_of(current).casefold():
            return Edit(None, "the same description")
    elif candidate.casefold() in (rule.casefold() for rule in text.learned_rules(components[target.component])):
        return Edit(None, "a rule the prompt already has")
    return Edit(candidate, None)


def clean_rewrite(raw: str, current: str, minibatch: Sequence[Rollout] = ()) -> Edit:
    """A whole new free-text component, or the reason it cannot replace `current`."""
    candidate = _FENCE.sub("", raw.strip()).strip()
    lines = candidate.split("\n")
    # "Here is the rewritten part:" on a line of its own is not part of the component.
    if len(lines) > 1 and _ANNOUNCEMENT.match(lines[0].strip()):
        candidate = "\n".join(lines[1:]).strip()
    if candidate.startswith(FENCE_QUOTES) and candidate.endswith(FENCE_QUOTES) and len(candidate) > 2 * len(FENCE_QUOTES):
        candidate = candidate[len(FENCE_QUOTES) : -len(FENCE_QUOTES)].strip()
    candidate = "\n".join(line.rstrip() for line in candidate.split("\n"))
    if not candidate:
        return Edit(None, "empty")
    if _is_json(candidate):
        return Edit(None, f"JSON, not text: {_excerpt(candidate, 60)}")
    lost = text.placeholders(current) - text.placeholders(candidate)
    if lost:
        return Edit(None, "lost placeholder(s) " + ", ".join("{{" + name + "}}" for name in sorted(lost)))
    added = text.placeholders(candidate) - text.placeholders(current)
    if added:
        return Edit(None, "adds placeholder(s) " + ", ".join("{{" + name + "}}" for name in sorted(added)))
    if "{{" in text.without_placeholders(candidate) or "}}" in text.without_placeholders(candidate):
        return Edit(None, "contains placeholder braces")
    words, current_words = len(text.words(candidate)), len(text.words(current))
    if words < max(MIN_EDIT_WORDS, REWRITE_MIN_WORD_SHARE * current_words):
        return Edit(None, f"too short ({words} words, the part has {current_words})")
    most_chars = min(MAX_COMPONENT_CHARS, REWRITE_MAX_GROWTH * len(current) + REWRITE_SLACK_CHARS)
    if len(candidate) > most_chars:
        return Edit(None, f"too long ({len(candidate)} characters, at most {most_chars})")
    loop = _loop(candidate, current)
    if loop:
        return Edit(None, f"repetitive ({loop})")
    if _copies_a_message(candidate, minibatch, current) or (_ECHO_LINE.search(candidate) and not _ECHO_LINE.search(current)):
        return Edit(None, "echoes the runs instead of answering")
    if text.one_line(candidate).casefold() == text.one_line(current).casefold():
        return Edit(None, "changes nothing")
    return Edit(candidate, None)


def _is_json(candidate: str) -> bool:
    try:
        return isinstance(json.loads(candidate), (dict, list))
    except json.JSONDecodeError:
        return False


def _loop(candidate: str, current: str) -> str | None:
    """What repeats in a degenerate rewrite, or None: a line, or a phrase far more often than in `current`."""
    line_counts = Counter(line.strip().casefold() for line in candidate.split("\n") if len(text.words(line)) >= 3)
    for line, count in line_counts.most_common(1):
        if count >= MAX_LINE_REPEATS:
            return f"the line {_excerpt(line, 60)!r} {count} times"
    phrases, before = _phrases(candidate), _phrases(current)
    for phrase, count in phrases.most_common(1):
        if count >= MAX_WORD_REPEATS and count >= before[phrase] + MAX_WORD_REPEATS:
            return f"{phrase!r} {count} times"
    return None


def _phrases(component: str) -> Counter[str]:
    words = [word.casefold() for word in text.words(component)]
    return Counter(" ".join(words[index : index + PHRASE_WORDS]) for index in range(len(words) - PHRASE_WORDS + 1))


def _apply(components: dict[str, str], target: Target, edit: str) -> dict[str, str]:
    edited = dict(components)
    if target.kind == "description" and target.label is not None:
        edited[target.component] = text.with_description(components[target.component], target.label, edit)
    elif target.kind == "rewrite":
        edited[target.component] = edit
    else:
        edited[target.component] = text.with_rule(components[target.component], edit, MAX_RULES)
    return edited


def _rationale(parent: Parent, target: Target, minibatch: Sequence[Rollout], critique: str, edit: str) -> str:
    if target.kind == "description":
        where = f"the description of {target.field} label {target.label!r}: {edit!r}"
    elif target.kind == "rewrite":
        where = f"{target.component!r} rewritten ({len(text.words(edit))} words)"
    else:
        where = f"a rule appended to {target.component!r}: {edit!r}"
    return (
        f"Critique of {parent.id} from {len(minibatch)} low-reward rollouts ({', '.join(rollout.id for rollout in minibatch)}):"
        f" {_excerpt(critique, RATIONALE_CRITIQUE_CHARS)} Edit, {where}."
    )
