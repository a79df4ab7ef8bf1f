"""The "llm-free" algorithm: children of each parent prompt, learned from scored rollouts without a model.

A child varies its parent along two axes, alone and combined, so that the workflow's dev scores can
tell which edit helps; each axis exists only where the agent lets an optimizer edit it:
- label descriptions (editable label components): each `- <label>: <description>` line ends with
  `; e.g. <keywords>`, words that set that label's messages apart in the ground truth significantly,
  weighted towards messages the parent got wrong; labels the parent still confuses get more words,
  and alternatives get fewer;
- demonstrations (an editable examples component): a seeded sample of top-reward runs covering
  distinct answers (see demonstrations.py); a parent that already shows demonstrations gets them
  repaired: an example that gave the wrong answer of a similar run is dropped, and training runs like
  the ones it got wrong are added.
Words and messages come from the training evidence (the incumbent's rollouts); a candidate parent's own
rollouts only steer (see demonstrations.training_evidence). Each child gets the keyword-overlap proxy
score on its parent's rollouts.
Deterministic: every random choice comes from a `random.Random` seeded by (seed, round, parent id), and
everything iterated is ordered.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from agl_optimizer import text
from agl_optimizer.contract import (
    AgentSpec,
    Candidate,
    Parent,
    Progress,
    Proposal,
    ProposeRequest,
    Rollout,
    refusal,
)
from agl_optimizer.demonstrations import (
    Demonstration,
    ExamplesEdit,
    Pool,
    Similarity,
    demonstration_pool,
    ground_truth_demonstrations,
    parse_examples,
    render_examples,
    repair_examples,
    select_demonstrations,
    training_evidence,
)
from agl_optimizer.proxy import keyword_overlap_accuracy

# A keyword must appear in at least this many distinct messages of its label...
MIN_KEYWORD_SUPPORT = 3
# ...and its smoothed log-odds ratio (label vs other labels, by messages containing it) must be at
# least this many standard errors above 0: z >= 1.96 is a one-sided test at the 2.5 % level.
MIN_KEYWORD_Z = 1.96
LOG_ODDS_SMOOTHING = 0.5
# A message the parent got wrong counts this many times when ranking keywords: those are the messages
# its descriptions fail to explain. The significance test counts every message once.
MISCLASSIFIED_WEIGHT = 2.0
MAX_KEYWORDS = 20
# A label line (label, description, `e.g.` and keywords) stays short enough to read at a glance.
MAX_LABEL_LINE_WORDS = 20
# Labels the parent confuses get this many times the keyword budget.
CONFUSED_KEYWORD_FACTOR = 2
MAX_ALTERNATIVES = 10

# field -> label -> keywords, most distinctive first
Keywords = dict[str, dict[str, tuple[str, ...]]]


@dataclass(frozen=True)
class LearnedKeywords:
    ranked: Keywords  # up to MAX_KEYWORDS per label, to be cut to a budget
    confused: frozenset[tuple[str, str]]  # (field, label) the parent answered wrongly at least once
    messages: int  # distinct messages with ground truth for a field with editable label descriptions
    misclassified: int  # of those, messages the parent got wrong on such a field (weighted up)
    problem: str | None  # why no keyword was learned


@dataclass(frozen=True)
class KeywordsEdit:
    name: str
    keywords: Keywords


@dataclass
class Draft:
    strategy: str
    components: dict[str, str]
    applied_keywords: Keywords  # only the label lines this draft changed
    examples: ExamplesEdit | None  # None when the examples component is unchanged


@dataclass
class ParentPlan:
    """What the algorithm learned for one parent: everything its children are built from."""

    parent: Parent
    own: tuple[Rollout, ...]
    learned: LearnedKeywords
    drafts: list[Draft] = field(default_factory=list)


def check_applicable(request: ProposeRequest) -> None:
    """Refuses (bad input) an agent with neither editable label descriptions nor an editable examples component."""
    agent = request.agent
    if agent.editable_label_components or agent.editable_examples_component:
        return
    if not agent.label_components:
        labels = "no label component (agent.label_components is {})"
    else:
        labels = "label components (" + ", ".join(sorted(agent.label_components.values())) + ") that are not in agent.editable"
    if agent.examples_component is None:
        examples = "no examples component (agent.examples_component is null)"
    else:
        examples = f'an examples component "{agent.examples_component}" that is not in agent.editable'
    raise refusal("llm-free", f"it sharpens label descriptions and writes demonstrations, but the agent has {labels} and {examples}")


def progress_steps(request: ProposeRequest) -> int:
    return len(request.parents) + 1


def propose(request: ProposeRequest, progress: Progress) -> Proposal:
    """Proposes up to params.num_candidates children per parent; reports progress_steps(request) steps."""
    params = request.params
    agent = request.agent
    evidence = training_evidence(request)
    if agent.editable_examples_component is None:
        pool = Pool((), None, "the examples component is not editable" if agent.examples_component else "the agent has no examples component")
    elif params["max_examples"] == 0:
        pool = Pool((), None, "params.max_examples is 0")
    else:
        pool = demonstration_pool(evidence, agent)
    similarity = Similarity(rollout.message for rollout in request.rollouts)
    corrections_from = (*pool.demonstrations, *ground_truth_demonstrations(evidence, agent)) if pool.demonstrations else ()

    # Any child equal to the incumbent, a parent or an earlier child would waste a dev evaluation.
    seen: list[dict[str, str]] = [request.components, *(parent.components for parent in request.parents)]
    plans: list[ParentPlan] = []
    for parent in request.parents:
        own = request.rollouts_of(parent)
        if params["max_keywords"] == 0:
            learned = LearnedKeywords({}, frozenset(), 0, 0, "params.max_keywords is 0")
        else:
            learned = learn_keywords(agent, evidence, own, parent.components)
        plan = ParentPlan(parent, own, learned)
        rng = request.rng_for(parent)
        plan.drafts = draft_children(request, plan, pool, corrections_from, similarity, rng, seen)
        plans.append(plan)
        progress(f"{parent.id}: {len(plan.drafts)} children from {len(own)} rollouts and {len(pool.demonstrations)} demonstrable messages")

    candidates = []
    for plan in plans:
        parent_score = keyword_overlap_accuracy(agent, plan.parent.components, plan.own)
        for draft in plan.drafts:
            score = keyword_overlap_accuracy(agent, draft.components, plan.own)
            candidates.append(
                Candidate(
                    parent=plan.parent.id,
                    strategy=draft.strategy,
                    components=draft.components,
                    rationale=_rationale(draft, plan, score, parent_score),
                    train_score=score,
                )
            )
    progress("scored the children with the keyword-overlap proxy on their parents' rollouts")
    return Proposal(tuple(candidates), _note(plans, params["num_candidates"], pool.problem))


# --- label descriptions --------------------------------------------------------------------------


def learn_keywords(
    agent: AgentSpec, rollouts: Sequence[Rollout], own: Sequence[Rollout], components: Mapping[str, str]
) -> LearnedKeywords:
    """Ranks significant words per label from every rollout's ground truth, weighting up the messages the parent got wrong."""
    label_components = agent.editable_label_components
    if not label_components:
        return LearnedKeywords({}, frozenset(), 0, 0, "the agent has no editable label component, there are no label descriptions to sharpen")
    with_truth = [rollout for rollout in rollouts if rollout.expected and any(name in rollout.expected for name in label_components)]
    if not with_truth:
        return LearnedKeywords({}, frozenset(), 0, 0, "no rollout has an expected value for a field with editable label descriptions")

    ranked: Keywords = {}
    confused: set[tuple[str, str]] = set()
    misclassified: set[str] = set()
    evidence_messages = {text.one_line(rollout.message) for rollout in with_truth}
    for name, component_name in label_components.items():
        lines = text.label_lines(components[component_name], agent.label_sets[name])
        wrong_share = _wrong_share(agent, own, name)
        confused.update((name, label) for (_, label), share in wrong_share.items() if share > 0)
        misclassified.update(message for (message, _), share in wrong_share.items() if share > 0 and message in evidence_messages)
        field_keywords = _field_keywords(with_truth, name, lines, wrong_share)
        if field_keywords:
            ranked[name] = field_keywords
    problem = None
    if not ranked:
        problem = (
            f"no word sets a label apart significantly (in at least {MIN_KEYWORD_SUPPORT} of its messages, z >= {MIN_KEYWORD_Z:g})"
            " without already being in its description"
        )
    return LearnedKeywords(ranked, frozenset(confused), len(evidence_messages), len(misclassified), problem)


def _wrong_share(agent: AgentSpec, own: Sequence[Rollout], name: str) -> dict[tuple[str, str], float]:
    """(message, true label) -> the fraction of the parent's runs on that message that got field `name` wrong."""
    runs: Counter[tuple[str, str]] = Counter()
    wrong: Counter[tuple[str, str]] = Counter()
    for rollout in own:
        if rollout.expected and name in rollout.expected:
            key = (text.one_line(rollout.message), rollout.expected[name])
            runs[key] += 1
            wrong[key] += (name, rollout.expected[name]) in agent.missed_labels(rollout)
    return {key: wrong[key] / runs[key] for key in runs}


@dataclass(frozen=True)
class _LabelledMessage:
    label: str
    words: frozenset[str]
    weight: float


def _field_keywords(
    rollouts: Sequence[Rollout], name: str, lines: Mapping[str, str], wrong_share: Mapping[tuple[str, str], float]
) -> dict[str, tuple[str, ...]]:
    """Per label, the significant words ranked by weighted smoothed log-odds ratio of appearing in its messages versus the others'."""
    distinct = sorted({(text.one_line(rollout.message), rollout.expected[name]) for rollout in rollouts if rollout.expected and name in rollout.expected})
    messages = [
        _LabelledMessage(label, text.keyword_tokens(message), 1 + (MISCLASSIFIED_WEIGHT - 1) * wrong_share.get((message, label), 0.0))
        for message, label in distinct
    ]
    keywords: dict[str, tuple[str, ...]] = {}
    for label, line in lines.items():
        inside = [message for message in messages if message.label == label]
        outside = [message for message in messages if message.label != label]
        inside_count: Counter[str] = Counter(word for message in inside for word in message.words)
        outside_count: Counter[str] = Counter(word for message in outside for word in message.words)
        inside_weights: defaultdict[str, float] = defaultdict(float)
        outside_weights: defaultdict[str, float] = defaultdict(float)
        for message in inside:
            for word in message.words:
                inside_weights[word] += message.weight
        for message in outside:
            for word in message.words:
                outside_weights[word] += message.weight
        inside_weight = sum(message.weight for message in inside)
        outside_weight = sum(message.weight for message in outside)

        already_described = {text.base_form(word) for word in text.token_set(text.without_keyword_suffix(line))}
        ranked: list[tuple[float, int, str]] = []
        for word in sorted(inside_count):
            if inside_count[word] < MIN_KEYWORD_SUPPORT or text.base_form(word) in already_described:
                continue
            if keyword_z(inside_count[word], len(inside), outside_count[word], len(outside)) < MIN_KEYWORD_Z:
                continue
            score = _log_odds(inside_weights[word], inside_weight) - _log_odds(outside_weights[word], outside_weight)
            ranked.append((-score, -inside_count[word], word))
        ranked.sort()
        # One form of a word: `founders` after `founder` says nothing new.
        distinct: dict[str, str] = {}
        for _, _, word in ranked:
            distinct.setdefault(text.base_form(word), word)
        if distinct:
            keywords[label] = tuple(distinct.values())[:MAX_KEYWORDS]
    return keywords


def keyword_z(inside_with: int, inside_total: int, outside_with: int, outside_total: int) -> float:
    """z-score of the smoothed log-odds ratio of a word's presence in a label's messages versus the others'.

    The ratio's standard error is the square root of the summed reciprocals of the four smoothed cells
    (Woolf's estimate, with Haldane-Anscombe's +0.5 so a word absent from the other labels stays finite).
    """
    cells = (inside_with, inside_total - inside_with, outside_with, outside_total - outside_with)
    smoothed = [cell + LOG_ODDS_SMOOTHING for cell in cells]
    ratio = math.log(smoothed[0] / smoothed[1]) - math.log(smoothed[2] / smoothed[3])
    return ratio / math.sqrt(sum(1 / cell for cell in smoothed))


def _log_odds(with_word: float, total: float) -> float:
    return math.log((with_word + LOG_ODDS_SMOOTHING) / (total - with_word + LOG_ODDS_SMOOTHING))


def keyword_budget(learned: LearnedKeywords, default: int, confused: int | None = None) -> Keywords:
    """The ranked keywords cut to `default` per label, or to `confused` for the labels the parent confuses."""
    return {
        name: {
            label: words[: confused if confused is not None and (name, label) in learned.confused else default]
            for label, words in by_label.items()
        }
        for name, by_label in learned.ranked.items()
    }


def _room_on_line(line: str) -> int:
    """How many keywords fit on a label line within MAX_LABEL_LINE_WORDS (an earlier keyword suffix is replaced)."""
    used = len(text.words(text.without_keyword_suffix(line))) + len(text.words(text.KEYWORD_SUFFIX_PREFIX))
    return max(0, MAX_LABEL_LINE_WORDS - used)


# --- children ------------------------------------------------------------------------------------


def apply_edit(
    agent: AgentSpec, components: Mapping[str, str], keywords: KeywordsEdit | None, examples: ExamplesEdit | None
) -> tuple[dict[str, str], Keywords]:
    """The edited components, and the keywords of the label lines that actually changed."""
    edited = dict(components)
    applied: Keywords = {}
    for name, keywords_by_label in (keywords.keywords if keywords else {}).items():
        component_name = agent.label_components[name]
        before = text.label_lines(edited[component_name], keywords_by_label.keys())
        fitted = {label: words[: _room_on_line(before[label])] for label, words in keywords_by_label.items()}
        edited[component_name] = text.with_keywords(edited[component_name], fitted)
        after = text.label_lines(edited[component_name], keywords_by_label.keys())
        changed = {label: words for label, words in fitted.items() if before[label] != after[label]}
        if changed:
            applied[name] = changed
    if examples is not None and agent.examples_component is not None:
        edited[agent.examples_component] = render_examples(examples.demonstrations)
    return edited, applied


def draft_children(
    request: ProposeRequest,
    plan: ParentPlan,
    pool: Pool,
    corrections_from: Sequence[Demonstration],
    similarity: Similarity,
    rng: random.Random,
    seen: list[dict[str, str]],
) -> list[Draft]:
    """Edits of the parent, most promising first: refined keywords and examples, each alone, then alternatives.

    A draft whose components are in `seen` is skipped; every draft taken is added to `seen`.
    """
    params = request.params
    agent = request.agent
    parent = plan.parent
    limit = params["num_candidates"]
    max_keywords = params["max_keywords"]
    max_examples = params["max_examples"]
    examples_component = agent.editable_examples_component
    demonstrable = pool.demonstrations if examples_component and max_examples else ()
    drafts: list[Draft] = []

    def consider(keywords: KeywordsEdit | None, examples: ExamplesEdit | None) -> None:
        if len(drafts) >= limit:
            return
        components, applied = apply_edit(agent, parent.components, keywords, examples)
        examples_changed = examples_component is not None and components[examples_component] != parent.components[examples_component]
        parts = [keywords.name] if keywords and applied else []
        parts += [examples.name] if examples and examples_changed else []
        if parts and components not in seen:
            seen.append(components)
            drafts.append(Draft("+".join(parts), components, applied, examples if examples_changed else None))

    learned = plan.learned
    keywords = sharpened = fewer = None
    if max_keywords and learned.ranked:
        keywords = KeywordsEdit("keywords", keyword_budget(learned, max_keywords))
        confused_budget = min(MAX_KEYWORDS, max_keywords * CONFUSED_KEYWORD_FACTOR)
        sharpened = KeywordsEdit("keywords-confused", keyword_budget(learned, max_keywords, confused_budget))
        fewer = KeywordsEdit("keywords-fewer", keyword_budget(learned, max(1, max_keywords // 2)))

    shown = parse_examples(parent.components[examples_component], agent) if examples_component and max_examples else None
    sample = ExamplesEdit("examples", select_demonstrations(demonstrable, max_examples, rng, avoid=frozenset())) if demonstrable else None
    repaired = repair_examples(shown, plan.own, corrections_from, agent, max_examples, rng, similarity) if shown else None
    refined_examples = repaired or sample

    consider(sharpened, refined_examples)
    consider(sharpened, None)
    consider(None, refined_examples)
    consider(keywords, sample)
    consider(keywords, None)
    consider(None, sample)

    shown_messages = {demonstration.message for demonstration in (refined_examples.demonstrations if refined_examples else ())}
    for alternative in range(1, MAX_ALTERNATIVES + 1):
        if len(drafts) >= limit or not demonstrable:
            break
        # Alternatives alternate between fewer examples with fewer keywords and a full other sample.
        size = max(1, max_examples // 2) if alternative % 2 else max_examples
        alternative_sample = select_demonstrations(demonstrable, size, rng, avoid=frozenset(shown_messages))
        shown_messages.update(demonstration.message for demonstration in alternative_sample)
        consider(fewer if alternative % 2 else keywords, ExamplesEdit(f"examples-alt{alternative}", alternative_sample))
    consider(fewer, None)
    return drafts


# --- explanations --------------------------------------------------------------------------------


def _rationale(draft: Draft, plan: ParentPlan, score: float | None, parent_score: float | None) -> str:
    learned = plan.learned
    parent_id = plan.parent.id
    clauses = []
    if draft.applied_keywords:
        listed = "; ".join(
            f"{label}: {', '.join(words)}"
            for by_label in draft.applied_keywords.values()
            for label, words in by_label.items()
        )
        weighted = f", {learned.misclassified} that {parent_id} got wrong weighted up" if learned.misclassified else ""
        confused = ", ".join(sorted(label for _, label in learned.confused))
        clauses.append(
            f"Label descriptions of {parent_id} now end with words that set each label's messages apart"
            f" (in at least {MIN_KEYWORD_SUPPORT} of them, z >= {MIN_KEYWORD_Z:g}) in"
            f" {learned.messages} training messages with ground truth{weighted}: {listed}"
            + (f" (more words for the labels {parent_id} missed: {confused})" if confused and draft.strategy.startswith("keywords-confused") else "")
        )
    if draft.examples:
        demonstrations = draft.examples.demonstrations
        signatures = {demonstration.signature for demonstration in demonstrations}
        variety = f" covering {len(signatures)} distinct kinds of answer" if any(signatures) else ""
        clauses.append(f"The examples now show {len(demonstrations)} demonstrations{variety}")
        if draft.examples.dropped:
            clauses.append(f"Dropped {len(draft.examples.dropped)} examples that share words with messages {parent_id} got wrong and give its wrong answer")
        if draft.examples.added:
            clauses.append(f"Added {len(draft.examples.added)} training demonstrations like the messages {parent_id} got wrong")
    if score is not None and parent_score is not None:
        clauses.append(f"Keyword-overlap proxy on {parent_id}'s rollouts: {score:.2f} ({parent_id} {parent_score:.2f})")
    return " ".join(f"{clause}." for clause in clauses)


def _note(plans: Iterable[ParentPlan], wanted: int, pool_problem: str | None) -> str | None:
    notes = []
    for plan in plans:
        if len(plan.drafts) >= wanted:
            continue
        reasons = []
        if plan.learned.problem:
            reasons.append(plan.learned.problem)
        elif not any(draft.applied_keywords for draft in plan.drafts):
            reasons.append("the learned keywords are already in the label descriptions")
        if pool_problem:
            reasons.append(pool_problem)
        elif not any(draft.examples for draft in plan.drafts):
            reasons.append("the chosen examples are already in the prompt")
        if not reasons:
            reasons.append("too few top-reward messages and keywords for more distinct alternatives")
        summary = "nothing to learn" if not plan.drafts else f"only {len(plan.drafts)} distinct children of {wanted} requested"
        notes.append(f"{plan.parent.id}: {summary}: {'; '.join(reasons)}")
    return " | ".join(notes) or None
