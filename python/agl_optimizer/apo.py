"""The "apo" algorithm: textual gradients in the style of ProTeGi, as Agent Lightning's APO uses them.

For each parent and each of `branch_factor` branches: sample a minibatch of the parent's low-reward
rollouts (seeded), ask the LLM for a critique of the prompt (the "textual gradient": what in it made
these answers wrong), then ask it to apply the critique as an edit. The workflow scores the children
and keeps the beam; this call is one round.

Small local models write poor prompts, so an edit is safe by construction: the LLM writes one short
text and this module puts it in place, never touching placeholders, label names or the examples:
- "description": a new description for the label the minibatch missed most, on that label's
  `- <label>:` line (a keyword suffix learned earlier stays);
- "rule": one sentence appended as a `Learned rule:` line to the prompt's free-text root component
  (the newest MAX_RULES are kept).
Branches alternate between the two. An empty, overlong, repetitive, JSON-shaped, brace-carrying or
echoing text is rejected and counted, and the parent gets fewer children rather than an invalid one.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from agl_optimizer import text
from agl_optimizer.contract import AgentSpec, Candidate, Parent, Progress, Proposal, ProposeRequest, Rollout, stable_order
from agl_optimizer.llm_client import ChatClient, ChatMessage
from agl_optimizer.proxy import keyword_overlap_accuracy

MAX_RULES = 3
DESCRIPTION_MAX_WORDS = 30
RULE_MAX_WORDS = 40
MAX_EDIT_CHARS = 300
MIN_EDIT_WORDS = 2
# A content word this often in one short edit is a degenerate loop, which small models fall into at temperature 0.
MAX_WORD_REPEATS = 4
POST_EXCERPT_CHARS = 280
CRITIQUE_EXCERPT_CHARS = 800
RATIONALE_CRITIQUE_CHARS = 240
PERFECT_REWARD = 1.0

_FENCE = re.compile(r"^```[\w-]*\n?|\n?```$")
_EDIT_LEAD = re.compile(r"^(?:[-*]\s*)?(?:(?:new|learned|the)\s+)?(?:description|rule)(?:\s+(?:of|for)\s+[\w-]+)?\s*:\s*", re.IGNORECASE)
_QUOTES = "\"'`*“”‘’"
_FENCE_QUOTES = '"""'
_ECHO = re.compile(r"\bpost:|\banswered\b.*\bexpected\b", re.IGNORECASE)


@dataclass(frozen=True)
class Target:
    """What one branch edits: a label's description, or the free-text root component (label None)."""

    kind: str  # "description" | "rule"
    component: str
    field: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class Edit:
    text: str | None
    problem: str | None  # why the text was rejected


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
        rule_component = _rule_component(request.agent, parent.components)
        reason = None
        if not low:
            reason = f"every scored rollout has reward {PERFECT_REWARD:g}, nothing to critique"
        elif not request.agent.label_components and rule_component is None:
            reason = "the prompt has neither label descriptions nor a free-text component to edit"
        if reason:
            notes.append(f"{parent.id}: no children: {reason}")
            for branch in range(branch_factor):
                progress(f"{parent.id} branch {branch + 1}: skipped, {reason}")
            continue

        problems: list[str] = []
        for branch in range(branch_factor):
            minibatch = sorted(rng.sample(low, min(request.params["minibatch_size"], len(low))), key=stable_order)
            target = _target(request.agent, minibatch, rule_component, prefer_rule=branch % 2 == 1, rng=rng)
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
        return NoChild("no label description explains the minibatch's errors and there is no free-text component", rejected=False)
    max_tokens = request.params["max_tokens"]
    critique = _clean_critique(client.complete(critique_messages(parent, minibatch), max_tokens))
    if not critique:
        return NoChild("empty critique", rejected=True)
    edit = clean_edit(client.complete(edit_messages(request.agent, parent, target, minibatch, critique), max_tokens), target, parent.components)
    if edit.text is None:
        return NoChild(f"{target.kind} edit rejected: {edit.problem}", rejected=True)
    components = _apply(parent.components, target, edit.text)
    if components in seen:
        return NoChild(f"{target.kind} edit rejected: the same edit as another candidate", rejected=True)
    return Candidate(
        parent=parent.id,
        strategy=f"apo-{target.kind}" + (f":{target.field}.{target.label}" if target.label else ""),
        components=components,
        rationale=_rationale(parent, target, minibatch, critique, edit.text),
        train_score=keyword_overlap_accuracy(request.agent, components, own),
    )


# --- what to edit --------------------------------------------------------------------------------


def _rule_component(agent: AgentSpec, components: dict[str, str]) -> str | None:
    """The free-text root component (instructions) rules are appended to, if the prompt has one."""
    special = {agent.examples_component, *agent.label_components.values()}
    roots = [name for name in text.unreferenced_components(components) if name not in special and components[name].strip()]
    return roots[0] if roots else None


def _misses(agent: AgentSpec, rollouts: Sequence[Rollout]) -> Counter[tuple[str, str]]:
    """(field, expected label) -> how many of the rollouts answered that described field wrongly."""
    misses: Counter[tuple[str, str]] = Counter()
    for rollout in rollouts:
        misses.update((field, label) for field, label in rollout.missed if field in agent.label_components)
    return misses


def _target(
    agent: AgentSpec, minibatch: Sequence[Rollout], rule_component: str | None, prefer_rule: bool, rng: random.Random
) -> Target | None:
    """The label the minibatch missed most (ties drawn by the seeded RNG), or the rule component."""
    misses = _misses(agent, minibatch)
    description: Target | None = None
    if misses:
        most = max(misses.values())
        field, label = rng.choice(sorted(key for key, count in misses.items() if count == most))
        description = Target("description", agent.label_components[field], field, label)
    rule = Target("rule", rule_component) if rule_component else None
    return (rule or description) if prefer_rule else (description or rule)


# --- prompts -------------------------------------------------------------------------------------


# Short, concrete prompts: a 135M-parameter local model loses the thread in long ones.
CRITIC_SYSTEM = "You are a careful reviewer of a text classifier's instructions."
DESCRIPTION_SYSTEM = "You write short label descriptions for a text classifier."
RULE_SYSTEM = "You improve a text classifier's instructions with short rules."


def critique_messages(parent: Parent, minibatch: Sequence[Rollout]) -> list[ChatMessage]:
    return [
        ChatMessage("system", CRITIC_SYSTEM),
        ChatMessage(
            "user",
            f"{_instructions(parent)}\n\n"
            f"It answered these posts wrongly:\n{_experiments(minibatch)}\n\n"
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
                f"{_instructions(parent)}\n\n"
                f"Reviewer's note on its mistakes: {critique}\n\n"
                "Write one short rule, in one sentence, to add to the instructions so that the classifier stops making"
                " these mistakes. Reply with the rule only.",
            ),
        ]
    assert target.field is not None and target.label is not None
    line = text.label_lines(parent.components[target.component], [target.label])[target.label]
    others = [label for label in agent.output_fields[target.field] if label != target.label]
    missed = [_excerpt(rollout.input_text) for rollout in minibatch if (target.field, target.label) in rollout.missed]
    return [
        ChatMessage("system", DESCRIPTION_SYSTEM),
        ChatMessage(
            "user",
            f'These posts belong to the {target.field} "{target.label}", but the classifier answered otherwise:\n'
            + "\n".join(f"- {post}" for post in missed)
            + f"\n\nCurrent description of {target.label}: {text.description_of(line)}\n"
            f"Other labels: {', '.join(others)}\n"
            f"Reviewer's note: {critique}\n\n"
            f"Write a better description of {target.label} in one short sentence that covers these posts."
            " Reply with the description only.",
        ),
    ]


def _instructions(parent: Parent) -> str:
    return f"The classifier's instructions:\n{_FENCE_QUOTES}\n{text.render(parent.components)}\n{_FENCE_QUOTES}"


def _experiments(minibatch: Sequence[Rollout]) -> str:
    def labels(values: dict[str, object]) -> str:
        return ", ".join(f"{field} {value}" for field, value in values.items())

    entries = []
    for rollout in minibatch:
        answer = f"answered {labels(rollout.output)}" if rollout.output is not None else f"gave no answer ({rollout.error or 'failed'})"
        expected = f"; expected {labels(rollout.expected)}" if rollout.expected else ""
        reasons = f": {'; '.join(rollout.reasons)}" if rollout.reasons else ""
        entries.append(f'- "{_excerpt(rollout.input_text)}" {answer}{expected} (reward {rollout.reward:g}{reasons})')
    return "\n".join(entries)


def _excerpt(post: str, limit: int = POST_EXCERPT_CHARS) -> str:
    shown = text.one_line(post)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


# --- checking and applying an edit ---------------------------------------------------------------


def _clean_critique(raw: str) -> str:
    return _excerpt(_FENCE.sub("", raw.strip()), CRITIQUE_EXCERPT_CHARS)


def clean_edit(raw: str, target: Target, components: dict[str, str]) -> Edit:
    """The LLM's text reduced to one line, or the reason it cannot go into the prompt."""
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
    if _ECHO.search(candidate):
        return Edit(None, "echoes the posts instead of answering")
    if target.kind == "description" and target.label is not None:
        current = text.label_lines(components[target.component], [target.label])[target.label]
        if candidate.casefold() == text.description_of(current).casefold():
            return Edit(None, "the same description")
    elif candidate.casefold() in (rule.casefold() for rule in text.learned_rules(components[target.component])):
        return Edit(None, "a rule the prompt already has")
    return Edit(candidate, None)


def _apply(components: dict[str, str], target: Target, edit: str) -> dict[str, str]:
    edited = dict(components)
    if target.kind == "description" and target.label is not None:
        edited[target.component] = text.with_description(components[target.component], target.label, edit)
    else:
        edited[target.component] = text.with_rule(components[target.component], edit, MAX_RULES)
    return edited


def _rationale(parent: Parent, target: Target, minibatch: Sequence[Rollout], critique: str, edit: str) -> str:
    where = f"the description of {target.field} label {target.label!r}" if target.label else f"a rule appended to {target.component!r}"
    return (
        f"Critique of {parent.id} from {len(minibatch)} low-reward rollouts ({', '.join(rollout.id for rollout in minibatch)}):"
        f" {_excerpt(critique, RATIONALE_CRITIQUE_CHARS)} Edit, {where}: {edit!r}."
    )
