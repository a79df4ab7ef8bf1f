"""The "llm-free" algorithm: children of each parent prompt, learned from scored rollouts without a model.

A child varies its parent along two axes, alone and combined, so that the workflow's dev scores can
tell which edit helps:
- label descriptions: each `- <label>: <description>` line ends with `; e.g. <keywords>`, words that set
  that label's posts apart in the ground truth, weighted towards posts the parent got wrong; labels
  the parent still confuses get more words, and alternatives get fewer;
- demonstrations: the examples component shows a seeded sample of top-reward, label-covering posts;
  a parent that already shows examples gets them repaired: an example is dropped when it shares words
  with a post the parent got wrong and carries the wrong answer the parent gave, and training posts
  like the ones it got wrong are added with the labels it missed.
Words and posts come from the training evidence (the incumbent's rollouts); a candidate parent's own
rollouts only steer (see training_evidence). Each child gets the keyword-overlap proxy score on its
parent's rollouts.
Deterministic: every random choice comes from a `random.Random` seeded by (seed, round, parent id), and
everything iterated is ordered.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from agl_optimizer import text
from agl_optimizer.contract import (
    INCUMBENT_ID,
    AgentSpec,
    Candidate,
    Parent,
    Progress,
    Proposal,
    ProposeRequest,
    Rollout,
    rollouts_of,
    stable_order,
)
from agl_optimizer.proxy import keyword_overlap_accuracy

MIN_KEYWORD_POSTS = 2
# A post the parent got wrong counts this many times when learning keywords: those are the posts its
# descriptions fail to explain.
MISCLASSIFIED_WEIGHT = 2.0
LOG_ODDS_SMOOTHING = 0.5
MAX_KEYWORDS = 20
# Labels the parent confuses get this many times the keyword budget.
CONFUSED_KEYWORD_FACTOR = 2
# Shared words that make an example "about" a post, for the repair of misleading examples.
MIN_SHARED_WORDS = 2
MAX_ALTERNATIVES = 10

# field -> label -> keywords, most distinctive first
Keywords = dict[str, dict[str, tuple[str, ...]]]

_EXAMPLES_HEADER = "Examples:\n"
_EXAMPLE_BLOCK = re.compile(r"Post: (?P<post>[^\n]*)\nAnswer: (?P<answer>\{[^\n]*\})\Z")


@dataclass(frozen=True)
class Demonstration:
    post: str
    answer: tuple[tuple[str, str], ...]  # (field, label) in the order of agent.output_fields

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for _, label in self.answer)

    def render(self) -> str:
        return f"Post: {self.post}\nAnswer: {json.dumps(dict(self.answer))}"


@dataclass(frozen=True)
class LearnedKeywords:
    ranked: Keywords  # up to MAX_KEYWORDS per label, to be cut to a budget
    confused: frozenset[tuple[str, str]]  # (field, label) the parent answered wrongly at least once
    posts: int  # distinct posts with ground truth for a field that has label descriptions
    misclassified: int  # of those, posts the parent got wrong on such a field (weighted up)
    problem: str | None  # why no keyword was learned


@dataclass(frozen=True)
class ExamplesEdit:
    name: str
    demonstrations: tuple[Demonstration, ...]
    dropped: tuple[Demonstration, ...] = ()  # misleading examples a repair removed
    added: tuple[Demonstration, ...] = ()  # corrections a repair added


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


def progress_steps(request: ProposeRequest) -> int:
    return len(request.parents) + 1


def propose(request: ProposeRequest, progress: Progress) -> Proposal:
    """Proposes up to params.num_candidates children per parent; reports progress_steps(request) steps."""
    params = request.params
    evidence = training_evidence(request)
    pool, pool_problem = demonstration_pool(evidence, request.agent)
    if params["max_examples"] == 0:
        pool_problem = "params.max_examples is 0"

    # Any child equal to the incumbent, a parent or an earlier child would waste a dev evaluation.
    seen: list[dict[str, str]] = [request.components, *(parent.components for parent in request.parents)]
    plans: list[ParentPlan] = []
    for parent in request.parents:
        own = request.rollouts_of(parent)
        if params["max_keywords"] == 0:
            learned = LearnedKeywords({}, frozenset(), 0, 0, "params.max_keywords is 0")
        else:
            learned = learn_keywords(request.agent, evidence, own, parent.components)
        plan = ParentPlan(parent, own, learned)
        plan.drafts = draft_children(request, plan, evidence, pool, request.rng_for(parent), seen)
        plans.append(plan)
        progress(f"{parent.id}: {len(plan.drafts)} children from {len(own)} rollouts and {len(pool)} demonstrable posts")

    candidates = []
    for plan in plans:
        parent_score = keyword_overlap_accuracy(request.agent, plan.parent.components, plan.own)
        for draft in plan.drafts:
            score = keyword_overlap_accuracy(request.agent, draft.components, plan.own)
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
    return Proposal(tuple(candidates), _note(plans, params["num_candidates"], pool_problem))


def training_evidence(request: ProposeRequest) -> tuple[Rollout, ...]:
    """The rollouts whose posts and ground truth may go into a prompt: the incumbent's, else all of them.

    A candidate's own rollouts are the runs the workflow scores it by; they say where a parent goes wrong
    (which labels it confuses, which examples mislead it), but copying their posts or words into its
    children would let the children fit the very tasks they are then judged on.
    """
    return rollouts_of(request.rollouts, INCUMBENT_ID) or request.rollouts


# --- demonstrations ------------------------------------------------------------------------------


def demonstration_pool(rollouts: Sequence[Rollout], agent: AgentSpec) -> tuple[list[Demonstration], str | None]:
    """Distinct posts of the top-reward runs with a complete answer, and why the pool is empty if it is."""
    scored = sorted(
        (rollout for rollout in rollouts if rollout.reward is not None and rollout.output is not None),
        key=stable_order,
    )
    if not scored:
        return [], "no scored rollout has an output to demonstrate"
    rewards = sorted((rollout.reward for rollout in scored if rollout.reward is not None), reverse=True)
    if rewards[0] <= 0:
        return [], f"the best reward of a run with output is {rewards[0]:g}, nothing worth demonstrating"
    threshold = 1.0 if rewards[0] >= 1.0 else rewards[math.ceil(len(rewards) / 4) - 1]

    pool: dict[str, Demonstration] = {}
    for rollout in scored:
        if rollout.reward is None or rollout.reward < threshold or rollout.reward <= 0:
            continue
        answer = _answer(rollout, agent.output_fields)
        if answer is not None:
            demonstration = _demonstration(rollout.input_text, answer)
            if demonstration and demonstration.post not in pool:
                pool[demonstration.post] = demonstration
    if not pool:
        return [], "no top-reward run has a complete answer to demonstrate"
    return list(pool.values()), None


def _demonstration(post: str, answer: tuple[tuple[str, str], ...]) -> Demonstration | None:
    demonstration = Demonstration(text.one_line(post), answer)
    # A post that looks like a placeholder would be substituted by the prompt engine.
    if not demonstration.post or text.placeholders(demonstration.render()):
        return None
    return demonstration


def _answer(rollout: Rollout, output_fields: Mapping[str, Sequence[str]]) -> tuple[tuple[str, str], ...] | None:
    """The ground truth when complete, else the run's own output if it is complete, valid and not known wrong."""
    expected = rollout.expected or {}
    if all(name in expected for name in output_fields):
        return tuple((name, expected[name]) for name in output_fields)
    output = rollout.output or {}
    answer = []
    for name, labels in output_fields.items():
        label = output.get(name)
        if not isinstance(label, str) or label not in labels or expected.get(name, label) != label:
            return None
        answer.append((name, label))
    return tuple(answer)


def select_demonstrations(
    pool: Sequence[Demonstration], limit: int, rng: random.Random, avoid: frozenset[str]
) -> tuple[Demonstration, ...]:
    """Greedy: unused label combinations first, then new labels, then posts not in `avoid`, then the seeded draw."""
    tiebreak = {demonstration.post: rng.random() for demonstration in pool}
    chosen: list[Demonstration] = []
    covered: set[tuple[str, str]] = set()
    combination_uses: Counter[tuple[str, ...]] = Counter()

    def preference(demonstration: Demonstration) -> tuple[int, int, bool, float]:
        return (
            combination_uses[demonstration.labels],
            -len(set(demonstration.answer) - covered),
            demonstration.post in avoid,
            tiebreak[demonstration.post],
        )

    remaining = list(pool)
    while remaining and len(chosen) < limit:
        best = min(remaining, key=preference)
        remaining.remove(best)
        chosen.append(best)
        covered.update(best.answer)
        combination_uses[best.labels] += 1
    return tuple(chosen)


def render_examples(demonstrations: Sequence[Demonstration]) -> str:
    return _EXAMPLES_HEADER + "\n\n".join(demonstration.render() for demonstration in demonstrations)


def parse_examples(component: str, agent: AgentSpec) -> tuple[Demonstration, ...] | None:
    """The demonstrations of an examples component this algorithm wrote; None for any other text."""
    if not component.startswith(_EXAMPLES_HEADER):
        return None
    demonstrations = []
    for block in component.removeprefix(_EXAMPLES_HEADER).split("\n\n"):
        match = _EXAMPLE_BLOCK.match(block)
        if not match:
            return None
        try:
            answer = json.loads(match.group("answer"))
        except json.JSONDecodeError:
            return None
        if not isinstance(answer, dict) or list(answer) != list(agent.output_fields):
            return None
        demonstrations.append(Demonstration(match.group("post"), tuple((name, str(answer[name])) for name in answer)))
    return tuple(demonstrations)


def repair_examples(
    shown: Sequence[Demonstration],
    own: Sequence[Rollout],
    evidence: Sequence[Rollout],
    agent: AgentSpec,
    limit: int,
    rng: random.Random,
) -> ExamplesEdit | None:
    """Drops examples that pulled the parent towards its wrong answers and adds corrections.

    A correction is a post of the training evidence, with its ground truth, that shares words with a
    post the parent got wrong and carries the label the parent missed there. None when the parent's
    rollouts give no reason to change its examples.
    """
    # (run the parent got wrong, its post's tokens, the labels it missed there)
    wrong = [
        (rollout, text.token_set(rollout.input_text), missed)
        for rollout in sorted(own, key=stable_order)
        if (missed := rollout.missed)
    ]
    if not wrong:
        return None

    def misleading(demonstration: Demonstration) -> bool:
        tokens = text.token_set(demonstration.post)
        return any(
            len(tokens & wrong_tokens) >= MIN_SHARED_WORDS
            and any((rollout.output or {}).get(name) == label for name, label in demonstration.answer if (name, label) not in (rollout.expected or {}).items())
            for rollout, wrong_tokens, _ in wrong
        )

    def relevance(demonstration: Demonstration) -> int:
        tokens = text.token_set(demonstration.post)
        return max(
            (len(tokens & wrong_tokens) for _, wrong_tokens, missed in wrong if missed & set(demonstration.answer)),
            default=0,
        )

    dropped = tuple(demonstration for demonstration in shown if misleading(demonstration))
    kept = [demonstration for demonstration in shown if demonstration not in dropped][:limit]
    kept_posts = {demonstration.post for demonstration in kept}
    corrections: dict[str, tuple[int, float, Demonstration]] = {}
    for rollout in sorted(evidence, key=stable_order):
        expected = rollout.expected or {}
        if not all(name in expected for name in agent.output_fields):
            continue
        demonstration = _demonstration(rollout.input_text, tuple((name, expected[name]) for name in agent.output_fields))
        if demonstration and demonstration.post not in kept_posts and demonstration.post not in corrections:
            shared = relevance(demonstration)
            if shared >= MIN_SHARED_WORDS:
                corrections[demonstration.post] = (-shared, rng.random(), demonstration)
    added = tuple(demonstration for _, _, demonstration in sorted(corrections.values())[: limit - len(kept)])
    if not dropped and not added:
        return None
    return ExamplesEdit("examples-repaired", (*kept, *added), dropped, added)


# --- label descriptions --------------------------------------------------------------------------


def learn_keywords(
    agent: AgentSpec, rollouts: Sequence[Rollout], own: Sequence[Rollout], components: Mapping[str, str]
) -> LearnedKeywords:
    """Ranks words per label from every rollout's ground truth, weighting up the posts the parent got wrong."""
    if not agent.label_components:
        return LearnedKeywords({}, frozenset(), 0, 0, "agent.label_components is empty, there are no label descriptions to sharpen")
    with_truth = [
        rollout
        for rollout in rollouts
        if rollout.expected and any(name in rollout.expected for name in agent.label_components)
    ]
    if not with_truth:
        return LearnedKeywords({}, frozenset(), 0, 0, "no rollout has an expected value for a field with label descriptions")

    ranked: Keywords = {}
    confused: set[tuple[str, str]] = set()
    misclassified: set[str] = set()
    evidence_posts = {rollout.input_text for rollout in with_truth}
    for name, component_name in agent.label_components.items():
        lines = text.label_lines(components[component_name], agent.output_fields[name])
        wrong_share = _wrong_share(own, name)
        confused.update((name, label) for (_, label), share in wrong_share.items() if share > 0)
        misclassified.update(post for (post, _), share in wrong_share.items() if share > 0 and post in evidence_posts)
        field_keywords = _field_keywords(with_truth, name, lines, wrong_share)
        if field_keywords:
            ranked[name] = field_keywords
    problem = None
    if not ranked:
        problem = (
            f"no word is distinctive of a label in at least {MIN_KEYWORD_POSTS} posts"
            " without already being in its description"
        )
    return LearnedKeywords(ranked, frozenset(confused), len(evidence_posts), len(misclassified), problem)


def _wrong_share(own: Sequence[Rollout], name: str) -> dict[tuple[str, str], float]:
    """(post, true label) -> the fraction of the parent's runs on that post that got field `name` wrong."""
    runs: Counter[tuple[str, str]] = Counter()
    wrong: Counter[tuple[str, str]] = Counter()
    for rollout in own:
        if rollout.expected and name in rollout.expected:
            key = (rollout.input_text, rollout.expected[name])
            runs[key] += 1
            wrong[key] += (name, rollout.expected[name]) in rollout.missed
    return {key: wrong[key] / runs[key] for key in runs}


@dataclass(frozen=True)
class _LabelledPost:
    label: str
    tokens: frozenset[str]
    weight: float


def _field_keywords(
    rollouts: Sequence[Rollout], name: str, lines: Mapping[str, str], wrong_share: Mapping[tuple[str, str], float]
) -> dict[str, tuple[str, ...]]:
    """Per label, the tokens with the highest smoothed log-odds of appearing in its posts versus the others."""
    distinct = sorted({(rollout.input_text, rollout.expected[name]) for rollout in rollouts if rollout.expected and name in rollout.expected})
    posts = [
        _LabelledPost(label, text.token_set(post), 1 + (MISCLASSIFIED_WEIGHT - 1) * wrong_share.get((post, label), 0.0))
        for post, label in distinct
    ]
    keywords: dict[str, tuple[str, ...]] = {}
    for label, line in lines.items():
        inside = [post for post in posts if post.label == label]
        outside = [post for post in posts if post.label != label]
        inside_weight = sum(post.weight for post in inside)
        outside_weight = sum(post.weight for post in outside)
        post_counts: Counter[str] = Counter()
        inside_weights: defaultdict[str, float] = defaultdict(float)
        outside_weights: defaultdict[str, float] = defaultdict(float)
        for post in inside:
            for token in post.tokens:
                post_counts[token] += 1
                inside_weights[token] += post.weight
        for post in outside:
            for token in post.tokens:
                outside_weights[token] += post.weight

        already_described = text.token_set(text.without_keyword_suffix(line))
        ranked: list[tuple[float, int, str]] = []
        for token in sorted(post_counts):
            if post_counts[token] < MIN_KEYWORD_POSTS or token in already_described:
                continue
            score = _log_odds(inside_weights[token], inside_weight) - _log_odds(outside_weights[token], outside_weight)
            if score > 0:
                ranked.append((-score, -post_counts[token], token))
        ranked.sort()
        if ranked:
            keywords[label] = tuple(token for _, _, token in ranked[:MAX_KEYWORDS])
    return keywords


def _log_odds(with_token: float, total: float) -> float:
    return math.log((with_token + LOG_ODDS_SMOOTHING) / (total - with_token + LOG_ODDS_SMOOTHING))


def keyword_budget(learned: LearnedKeywords, default: int, confused: int | None = None) -> Keywords:
    """The ranked keywords cut to `default` per label, or to `confused` for the labels the parent confuses."""
    return {
        name: {
            label: words[: confused if confused is not None and (name, label) in learned.confused else default]
            for label, words in by_label.items()
        }
        for name, by_label in learned.ranked.items()
    }


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
        edited[component_name] = text.with_keywords(edited[component_name], keywords_by_label)
        after = text.label_lines(edited[component_name], keywords_by_label.keys())
        changed = {label: words for label, words in keywords_by_label.items() if before[label] != after[label]}
        if changed:
            applied[name] = changed
    if examples is not None:
        edited[agent.examples_component] = render_examples(examples.demonstrations)
    return edited, applied


def draft_children(
    request: ProposeRequest,
    plan: ParentPlan,
    evidence: Sequence[Rollout],
    pool: Sequence[Demonstration],
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
    drafts: list[Draft] = []

    def consider(keywords: KeywordsEdit | None, examples: ExamplesEdit | None) -> None:
        if len(drafts) >= limit:
            return
        components, applied = apply_edit(agent, parent.components, keywords, examples)
        examples_changed = components[agent.examples_component] != parent.components[agent.examples_component]
        parts = [keywords.name] if keywords and applied else []
        parts += [examples.name] if examples and examples_changed else []
        if parts and components not in seen:
            seen.append(components)
            drafts.append(Draft("+".join(parts), components, applied, examples if examples_changed else None))

    learned = plan.learned
    keywords = KeywordsEdit("keywords", keyword_budget(learned, max_keywords)) if max_keywords else None
    confused_budget = min(MAX_KEYWORDS, max_keywords * CONFUSED_KEYWORD_FACTOR)
    sharpened = KeywordsEdit("keywords-confused", keyword_budget(learned, max_keywords, confused_budget)) if max_keywords else None
    fewer = KeywordsEdit("keywords-fewer", keyword_budget(learned, max(1, max_keywords // 2))) if max_keywords else None

    shown = parse_examples(parent.components[agent.examples_component], agent)
    sample = ExamplesEdit("examples", select_demonstrations(pool, max_examples, rng, avoid=frozenset())) if max_examples and pool else None
    repaired = repair_examples(shown, plan.own, evidence, agent, max_examples, rng) if shown and max_examples else None
    refined_examples = repaired or sample

    consider(sharpened, refined_examples)
    consider(sharpened, None)
    consider(None, refined_examples)
    consider(keywords, sample)
    consider(keywords, None)
    consider(None, sample)

    shown_posts = {demonstration.post for demonstration in (refined_examples.demonstrations if refined_examples else ())}
    for alternative in range(1, MAX_ALTERNATIVES + 1):
        if len(drafts) >= limit or not max_examples or not pool:
            break
        # Alternatives alternate between fewer examples with fewer keywords and a full other sample.
        size = max(1, max_examples // 2) if alternative % 2 else max_examples
        alternative_sample = select_demonstrations(pool, size, rng, avoid=frozenset(shown_posts))
        shown_posts.update(demonstration.post for demonstration in alternative_sample)
        consider(fewer if alternative % 2 else keywords, ExamplesEdit(f"examples-alt{alternative}", alternative_sample))
    return drafts


# --- explanations --------------------------------------------------------------------------------


def _rationale(draft: Draft, plan: ParentPlan, score: float | None, parent_score: float | None) -> str:
    learned = plan.learned
    clauses = []
    if draft.applied_keywords:
        listed = "; ".join(
            f"{label}: {', '.join(words)}"
            for by_label in draft.applied_keywords.values()
            for label, words in by_label.items()
        )
        weighted = f", {learned.misclassified} that {plan.parent.id} got wrong weighted up" if learned.misclassified else ""
        confused = ", ".join(sorted(label for _, label in learned.confused))
        clauses.append(
            f"Label descriptions of {plan.parent.id} now end with words that set each label's posts apart in"
            f" {learned.posts} training posts with ground truth{weighted}: {listed}"
            + (f" (more words for the labels {plan.parent.id} missed: {confused})" if confused and draft.strategy.startswith("keywords-confused") else "")
        )
    if draft.examples:
        combinations = list(dict.fromkeys("/".join(demonstration.labels) for demonstration in draft.examples.demonstrations))
        clauses.append(
            f"The examples now show {len(draft.examples.demonstrations)} posts covering"
            f" {len(combinations)} label combinations ({', '.join(combinations)})"
        )
        if draft.examples.dropped:
            clauses.append(f"Dropped {len(draft.examples.dropped)} examples that share words with posts {plan.parent.id} got wrong and carry its wrong answer")
        if draft.examples.added:
            clauses.append(f"Added {len(draft.examples.added)} posts like those {plan.parent.id} got wrong, with the labels it missed")
    if score is not None and parent_score is not None:
        clauses.append(f"Keyword-overlap proxy on {plan.parent.id}'s rollouts: {score:.2f} ({plan.parent.id} {parent_score:.2f})")
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
            reasons.append("too few top-reward posts and keywords for more distinct alternatives")
        summary = "nothing to learn" if not plan.drafts else f"only {len(plan.drafts)} distinct children of {wanted} requested"
        notes.append(f"{plan.parent.id}: {summary}: {'; '.join(reasons)}")
    return " | ".join(notes) or None
