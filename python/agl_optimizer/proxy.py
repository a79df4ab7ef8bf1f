"""The keyword-overlap proxy score: a cheap, model-free estimate of how well a prompt's label lines fit messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agl_optimizer import text
from agl_optimizer.contract import AgentSpec, Rollout


def keyword_overlap_accuracy(agent: AgentSpec, components: Mapping[str, str], rollouts: Sequence[Rollout]) -> float | None:
    """Fraction of expected labels a keyword-overlap classifier gets right; None without label descriptions or ground truth.

    For a field with label descriptions, the prediction is the label whose line shares the most words
    with the message; on a tie, or for label fields without descriptions, it is what the agent actually
    answered in that rollout. Fields without a label set are not counted: nothing here can predict
    them. Optimistic when the keywords were learned from the same rollouts, and blind to examples and
    free-text instructions: it compares candidates, the workflow's scores judge them.
    """
    if not agent.label_components:
        return None
    line_tokens = {
        field: {label: text.token_set(line) for label, line in text.label_lines(components[name], agent.label_sets[field]).items()}
        for field, name in agent.label_components.items()
    }
    right = 0
    total = 0
    for rollout in rollouts:
        answered = rollout.output or {}
        message_tokens = text.token_set(text.one_line(rollout.message))
        for field, truth in (rollout.expected or {}).items():
            if field not in agent.label_sets:
                continue
            prediction = answered.get(field)
            if field in line_tokens:
                overlaps = {label: len(message_tokens & tokens) for label, tokens in line_tokens[field].items()}
                best = max(overlaps.values())
                winners = [label for label, overlap in overlaps.items() if overlap == best]
                if len(winners) == 1:
                    prediction = winners[0]
            right += prediction == truth
            total += 1
    return round(right / total, 4) if total else None
