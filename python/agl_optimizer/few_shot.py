"""The "few-shot" algorithm: demonstrations bootstrapped from high-reward training runs, for any agent.

DSPy's BootstrapFewShotWithRandomSearch idea, with the search kept by the workflow: the runs whose
reward reached the top (see demonstrations.demonstration_pool) become demonstrations of the agent's
own message and answer (or its ground truth), and each parent gets children that show distinct seeded
subsets of them, of sizes max_examples, half of it, a quarter, ... down to 1 and again. The workflow
scores every child on its dev tasks and keeps the best: that is the random search.

Only the examples component changes, so any agent with an editable examples component can use it:
classifiers, structured extractors, free-text agents. Subsets prefer answers of kinds not shown yet
(labels, and for other fields null, empty, one or many values), then messages earlier children did
not show. Deterministic: the draws come from a `random.Random` seeded by (seed, round, parent id).
"""

from __future__ import annotations

from collections.abc import Sequence

from agl_optimizer.contract import Candidate, Parent, Progress, Proposal, ProposeRequest, refusal
from agl_optimizer.demonstrations import (
    Demonstration,
    Pool,
    demonstration_pool,
    describe_sources,
    render_examples,
    select_demonstrations,
    training_evidence,
)

# Draws per wanted child before a parent settles for fewer: a small pool repeats subsets.
DRAWS_PER_CHILD = 4


def check_applicable(request: ProposeRequest) -> None:
    """Refuses (bad input) an agent without an editable examples component: there is nowhere to put demonstrations."""
    agent = request.agent
    if agent.examples_component is None:
        raise refusal("few-shot", "it writes demonstrations to the examples component, but agent.examples_component is null")
    if agent.editable_examples_component is None:
        raise refusal("few-shot", f'it writes demonstrations to the examples component, but "{agent.examples_component}" is not in agent.editable')


def progress_steps(request: ProposeRequest) -> int:
    return len(request.parents) + 1


def subset_sizes(max_examples: int) -> list[int]:
    """max_examples, half of it, a quarter, ... down to 1: the sizes children cycle through."""
    sizes = [max_examples]
    while sizes[-1] > 1:
        sizes.append(sizes[-1] // 2)
    return sizes


def propose(request: ProposeRequest, progress: Progress) -> Proposal:
    """Proposes up to params.num_candidates children per parent; reports progress_steps(request) steps."""
    agent = request.agent
    examples_component = agent.editable_examples_component
    assert examples_component is not None, "check_applicable refuses an agent without an editable examples component"
    pool = demonstration_pool(training_evidence(request), agent)
    wanted = request.params["num_candidates"]
    seen: list[dict[str, str]] = [request.components, *(parent.components for parent in request.parents)]
    candidates: list[Candidate] = []
    notes: list[str] = []
    for parent in request.parents:
        children = _children(request, parent, pool, examples_component, seen)
        candidates += children
        if len(children) < wanted:
            reason = pool.problem or f"only {len(pool.demonstrations)} demonstrable messages, too few for more distinct subsets"
            summary = "nothing to demonstrate" if not children else f"only {len(children)} distinct children of {wanted} requested"
            notes.append(f"{parent.id}: {summary}: {reason}")
        progress(f"{parent.id}: {len(children)} children from {len(pool.demonstrations)} demonstrable messages")
    progress(f"{len(candidates)} children with distinct demonstration subsets")
    return Proposal(tuple(candidates), " | ".join(notes) or None)


def _children(
    request: ProposeRequest, parent: Parent, pool: Pool, examples_component: str, seen: list[dict[str, str]]
) -> list[Candidate]:
    wanted = request.params["num_candidates"]
    sizes = subset_sizes(request.params["max_examples"])
    rng = request.rng_for(parent)
    shown: set[str] = set()
    children: list[Candidate] = []
    for draw in range(wanted * DRAWS_PER_CHILD):
        if len(children) >= wanted or not pool.demonstrations:
            break
        subset = select_demonstrations(pool.demonstrations, sizes[draw % len(sizes)], rng, avoid=frozenset(shown))
        components = {**parent.components, examples_component: render_examples(subset)}
        if components in seen:
            continue
        seen.append(components)
        shown.update(demonstration.message for demonstration in subset)
        children.append(
            Candidate(
                parent=parent.id,
                strategy=f"few-shot-{len(subset)}",
                components=components,
                rationale=_rationale(parent, subset, pool),
                # No cheap proxy sees what a demonstration is worth: the dev tasks judge it.
                train_score=None,
            )
        )
    return children


def _rationale(parent: Parent, subset: Sequence[Demonstration], pool: Pool) -> str:
    signatures = {demonstration.signature for demonstration in subset}
    variety = f", covering {len(signatures)} distinct kinds of answer" if any(signatures) else ""
    return (
        f"The examples of {parent.id} now show {len(subset)} of {len(pool.demonstrations)} demonstrations bootstrapped from"
        f" training runs with reward >= {pool.threshold:g} ({describe_sources(subset)}){variety}."
    )
