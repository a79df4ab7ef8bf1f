"""The "gepa" algorithm: one step of GEPA's reflective prompt evolution (Agrawal et al., 2025, arXiv 2507.19457).

GEPA keeps a pool of prompts with a score per dev task, picks a parent from the Pareto front of those
scores, rewrites one of its components from feedback on a minibatch of runs, and keeps the child only
if it beats the parent on that minibatch; now and then it merges two pool members that improved
different components. Here the workflow keeps all of that (the pool, the per-task scores, ancestry,
minibatches and the budget) and this module does the two steps that need the prompts' text, one per
call, statelessly:

- reflect (`gepa.step` "reflect"): the reflection model reads the parent's minibatch runs (each
  message, answer, tool calls and the scorers' reasons) and writes a new text for `gepa.component`.
  The text is checked like an `apo` rewrite (placeholders exactly kept, no loop, no copied runs, a sane
  size, something changed) and, for a label component, must keep one line per label; a rejected
  answer gives no child.
- merge (`gepa.step` "merge"): GEPA's system-aware merge of two parents with a common ancestor: each
  component comes from the parent that changed it since the ancestor; where both changed it, from the
  first parent (the workflow puts the one with the better dev score first). No model is called.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from agl_optimizer import apo, text
from agl_optimizer.contract import (
    AgentSpec,
    ContractError,
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

PERFECT_REWARD = 1.0
REFLECT_SYSTEM = "You improve one part of an AI agent's instructions, using feedback on its answers."
# GEPA's reflection prompt asks for the new text inside ``` fences; what surrounds them is commentary.
_FENCED = re.compile(r"```(?:[A-Za-z][\w-]*)?[ \t]*\n?(.*)```", re.DOTALL)


def reflectable_components(agent: AgentSpec, components: dict[str, str]) -> tuple[str, ...]:
    """What a reflection may rewrite, in the agent's order: editable label components, and editable
    free-text components that have text (demonstrations are the few-shot algorithm's business)."""
    labels = set(agent.editable_label_components.values())
    return tuple(
        name for name in agent.components if name in labels or (name in agent.free_text_components and components[name].strip())
    )


def check_applicable(request: ProposeRequest) -> None:
    """Refuses (bad input) an agent with nothing to reflect on, and a reflect step on a component it may not rewrite."""
    assert request.gepa is not None, "parse_request requires the gepa step of algorithm gepa"
    reflectable = reflectable_components(request.agent, request.components)
    if not reflectable:
        editable = ", ".join(sorted(request.agent.editable)) or "nothing"
        raise refusal(
            "gepa",
            "it rewrites label components and free-text components, but the agent has no editable label component and no"
            f" editable free-text component with text (neither a label component nor the examples component); agent.editable is: {editable}",
        )
    component = request.gepa.component
    if request.gepa.step == "reflect" and component not in reflectable:
        raise ContractError(
            "input", "gepa.component", f"{component!r} is not a component a reflection may rewrite (these are: {', '.join(reflectable)})"
        )


def progress_steps(request: ProposeRequest) -> int:
    return 1


def propose(request: ProposeRequest, progress: Progress) -> Proposal:
    assert request.gepa is not None, "parse_request requires the gepa step of algorithm gepa"
    if request.gepa.step == "merge":
        return merge(request, progress)
    return reflect(request, progress)


# --- reflect -------------------------------------------------------------------------------------


def reflect(request: ProposeRequest, progress: Progress) -> Proposal:
    """One reflection call; at most one child, which differs from the parent in `gepa.component` only."""
    assert request.gepa is not None and request.gepa.component is not None and request.llm is not None
    parent = request.parents[0]
    component = request.gepa.component
    # A run without a reward gives no feedback to learn from.
    runs = sorted((rollout for rollout in request.rollouts_of(parent) if rollout.reward is not None), key=stable_order)
    scored = [rollout.reward for rollout in runs if rollout.reward is not None]
    if all(reward >= PERFECT_REWARD for reward in scored):
        progress(f"{parent.id}: no reflection, every run of the minibatch has reward {PERFECT_REWARD:g}")
        return Proposal((), f"{parent.id}: every run of the minibatch has reward {PERFECT_REWARD:g}, nothing to reflect on")

    client = ChatClient(request.llm)
    answer = client.complete(reflection_messages(request.agent, parent, component, runs), request.params["max_tokens"])
    new_text, problem = checked_text(answer, request.agent, parent.components[component], component, runs)
    if new_text is not None:
        components = {**parent.components, component: new_text}
        if components == request.components:
            new_text, problem = None, "the incumbent's text again"
    if new_text is None:
        progress(f"{parent.id}: {component} rewrite rejected: {problem}")
        return Proposal((), f"{parent.id}: rewrite of {component!r} rejected: {problem}", llm_calls=client.calls, rejected_edits=1)

    mean = sum(scored) / len(scored)
    rationale = (
        f"Reflection on {len(runs)} minibatch runs of {parent.id} (mean reward {mean:+.2f}; {', '.join(rollout.id for rollout in runs)}):"
        f" {component!r} rewritten ({len(text.words(new_text))} words)."
    )
    progress(f"{parent.id}: {component} rewritten")
    child = Candidate(parent=parent.id, strategy=f"gepa-reflect:{component}", components=components, rationale=rationale, train_score=None)
    return Proposal((child,), None, llm_calls=client.calls)


def reflection_messages(agent: AgentSpec, parent: Parent, component: str, runs: Sequence[Rollout]) -> list[ChatMessage]:
    """GEPA's reflection prompt, short enough for a small local model: the component as it reads now, then
    the runs with their feedback, then the request for a new text inside ``` fences."""
    current = parent.components[component]
    about = f"The agent {agent.name}: {agent.description}\n\n" if agent.description.strip() else ""
    return [
        ChatMessage("system", REFLECT_SYSTEM),
        ChatMessage(
            "user",
            f"{about}The part \"{component}\" of the agent's instructions reads now:\n{apo.FENCE_QUOTES}\n{current}\n{apo.FENCE_QUOTES}\n"
            f"{_shape_of(agent, component, current)}\n\n"
            f"Messages the agent was sent, its answers and the feedback on them:\n{apo.describe_runs(agent, runs)}\n\n"
            f'Write a new version of the part "{component}" that fixes what the feedback points out: work out what the task'
            " needs from the messages and the feedback, and put the specific facts the agent missed into the text."
            " Reply with the new text of the part only, inside ``` fences.",
        ),
    ]


def _shape_of(agent: AgentSpec, component: str, current: str) -> str:
    """What the new text must keep: one line per label of a label component, and the placeholders."""
    rules = []
    for field, name in agent.label_components.items():
        if name == component:
            labels = ", ".join(agent.label_sets[field])
            rules.append(f'It has one line "- <label>: <description>" for each {field} ({labels}): keep exactly one line per label.')
    placeholders = sorted(text.placeholders(current))
    if placeholders:
        rules.append("Keep every placeholder exactly as written (" + ", ".join("{{" + name + "}}" for name in placeholders) + ").")
    else:
        rules.append("Do not add placeholders in double braces.")
    return " ".join(rules)


def checked_text(answer: str, agent: AgentSpec, current: str, component: str, runs: Sequence[Rollout]) -> tuple[str | None, str | None]:
    """The new text of `component` from the reflection's answer, or None and why it cannot replace `current`."""
    fenced = _FENCED.search(answer)
    edit = apo.clean_rewrite(fenced.group(1) if fenced else answer, current, runs)
    if edit.text is None:
        return None, edit.problem
    for field, name in agent.label_components.items():
        if name != component:
            continue
        for label, found in text.label_line_indexes(edit.text, agent.label_sets[field]).items():
            if len(found) != 1:
                return None, f'{"no" if not found else len(found)} "- {label}: ..." line{"s" if len(found) > 1 else ""}, expected exactly one'
    return edit.text, None


# --- merge ---------------------------------------------------------------------------------------


def merge(request: ProposeRequest, progress: Progress) -> Proposal:
    """GEPA's merge: the ancestor's components, each replaced by the parent's that changed it (the first parent's where both did)."""
    assert request.gepa is not None and request.gepa.ancestor is not None
    first, second = request.parents
    ancestor = request.gepa.ancestor
    components: dict[str, str] = {}
    sources: list[str] = []
    for name in request.agent.components:
        old, mine, theirs = ancestor.components[name], first.components[name], second.components[name]
        if mine == old and theirs != old:
            components[name] = theirs
            sources.append(f"{name} from {second.id}")
        else:
            components[name] = mine
            if mine != old:
                sources.append(f"{name} from {first.id}" + (f" (both changed it; {first.id} scored better)" if theirs not in (old, mine) else ""))
    same_as = next((known.id for known in (first, second) if known.components == components), None)
    if same_as is None and components == request.components:
        same_as = "the incumbent"
    if same_as is not None:
        progress(f"nothing to merge: {first.id} and {second.id} give {same_as}")
        return Proposal((), f"{first.id} + {second.id}: nothing to merge, the merge is {same_as} (ancestor {ancestor.id})")
    progress(f"merged {first.id} and {second.id}")
    rationale = f"Merge of {first.id} and {second.id}, descendants of {ancestor.id}: {'; '.join(sources)}."
    return Proposal((Candidate(parent=first.id, strategy="gepa-merge", components=components, rationale=rationale, train_score=None),), None)
