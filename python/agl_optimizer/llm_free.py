"""The "llm-free" algorithm: proposes prompt edits learned from scored rollouts without calling a model.

One round learns two kinds of edits and combines them into candidates:
- demonstrations: the examples component shows top-reward runs, chosen to cover many label combinations;
- sharpened label descriptions: each `- <label>: <description>` line ends with `; e.g. <keywords>`, the
  keywords being words that set that label's posts apart, weighted towards posts the agent got wrong.
Each candidate gets a cheap keyword-overlap proxy score on the training rollouts.
Deterministic: every random choice comes from `random.Random(seed)` and everything iterated is ordered.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from agl_optimizer import text
from agl_optimizer.contract import Candidate, Proposal, ProposeRequest, Rollout

PROGRESS_STEPS = 4
MIN_KEYWORD_POSTS = 2
# A post the agent got wrong counts this many times when learning keywords: those are the posts the
# current descriptions fail to explain.
MISCLASSIFIED_WEIGHT = 2.0
LOG_ODDS_SMOOTHING = 0.5
MAX_ALTERNATIVES = 10

# field -> label -> keywords, most distinctive first
Keywords = dict[str, dict[str, tuple[str, ...]]]
Progress = Callable[[str], None]


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
    keywords: Keywords
    posts: int  # distinct posts with ground truth for a field that has label descriptions
    misclassified: int  # of those, posts the agent got wrong on such a field at least once
    problem: str | None  # why no keyword was learned


@dataclass(frozen=True)
class Edit:
    keywords: Keywords
    demonstrations: tuple[Demonstration, ...]  # empty: leave the examples component alone


@dataclass(frozen=True)
class Draft:
    strategy: str
    components: dict[str, str]
    applied_keywords: Keywords  # only the label lines this draft actually changed
    shown_demonstrations: tuple[Demonstration, ...]  # empty when the examples component is unchanged


@dataclass(frozen=True)
class _LabelledPost:
    label: str
    tokens: frozenset[str]
    weight: float


def propose(request: ProposeRequest, progress: Progress) -> Proposal:
    """Runs one round and reports PROGRESS_STEPS progress steps."""
    params = request.params
    rng = random.Random(request.seed)

    pool, pool_problem = demonstration_pool(request)
    if params.max_examples == 0:
        pool_problem = "params.max_examples is 0"
    primary = select_demonstrations(pool, params.max_examples, rng, avoid=frozenset())
    progress(f"selected {len(primary)} demonstrations from {len(pool)} top-reward posts")

    learned = learn_keywords(request, params.max_keywords)
    keyword_count = sum(len(words) for by_label in learned.keywords.values() for words in by_label.values())
    progress(f"learned {keyword_count} keywords from {learned.posts} posts with ground truth")

    drafts = draft_candidates(request, learned.keywords, pool, primary, rng)
    progress(f"built {len(drafts)} distinct candidates")

    post_tokens = {rollout.input_text: text.token_set(rollout.input_text) for rollout in request.rollouts}
    incumbent_score = keyword_overlap_accuracy(request, request.components, post_tokens)
    candidates = []
    for draft in drafts:
        score = keyword_overlap_accuracy(request, draft.components, post_tokens)
        candidates.append(
            Candidate(
                strategy=draft.strategy,
                components=draft.components,
                rationale=_rationale(draft, learned, score, incumbent_score),
                train_score=score,
            )
        )
    progress("scored candidates with the keyword-overlap proxy")
    return Proposal(tuple(candidates), _note(drafts, params.num_candidates, learned, pool_problem))


# --- demonstrations ------------------------------------------------------------------------------


def demonstration_pool(request: ProposeRequest) -> tuple[list[Demonstration], str | None]:
    """Distinct posts of the top-reward runs with a complete answer, and why the pool is empty if it is."""
    scored = sorted(
        (rollout for rollout in request.rollouts if rollout.reward is not None and rollout.output is not None),
        key=lambda rollout: rollout.id,
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
        answer = _answer(rollout, request.agent.output_fields)
        if answer is None:
            continue
        demonstration = Demonstration(text.one_line(rollout.input_text), answer)
        # A post that looks like a placeholder would be substituted by the prompt engine.
        usable = demonstration.post and not text.placeholders(demonstration.render())
        if usable and demonstration.post not in pool:
            pool[demonstration.post] = demonstration
    if not pool:
        return [], "no top-reward run has a complete answer to demonstrate"
    return list(pool.values()), None


def _answer(rollout: Rollout, output_fields: Mapping[str, Sequence[str]]) -> tuple[tuple[str, str], ...] | None:
    """The ground truth when complete, else the run's own output if it is complete, valid and not known wrong."""
    expected = rollout.expected or {}
    if all(field in expected for field in output_fields):
        return tuple((field, expected[field]) for field in output_fields)
    output = rollout.output or {}
    answer = []
    for field, labels in output_fields.items():
        label = output.get(field)
        if not isinstance(label, str) or label not in labels or expected.get(field, label) != label:
            return None
        answer.append((field, label))
    return tuple(answer)


def select_demonstrations(
    pool: Sequence[Demonstration], limit: int, rng: random.Random, avoid: frozenset[str]
) -> tuple[Demonstration, ...]:
    """Greedy: unused label combinations first, then new labels, then posts not in `avoid`, then shorter posts."""
    tiebreak = {demonstration.post: rng.random() for demonstration in pool}
    chosen: list[Demonstration] = []
    covered: set[tuple[str, str]] = set()
    combination_uses: Counter[tuple[str, ...]] = Counter()

    def preference(demonstration: Demonstration) -> tuple[int, int, bool, int, float]:
        return (
            combination_uses[demonstration.labels],
            -len(set(demonstration.answer) - covered),
            demonstration.post in avoid,
            len(demonstration.post),
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
    return "Examples:\n" + "\n\n".join(demonstration.render() for demonstration in demonstrations)


# --- label descriptions --------------------------------------------------------------------------


def learn_keywords(request: ProposeRequest, limit: int) -> LearnedKeywords:
    agent = request.agent
    if limit == 0:
        return LearnedKeywords({}, 0, 0, "params.max_keywords is 0")
    if not agent.label_components:
        return LearnedKeywords({}, 0, 0, "agent.label_components is empty, there are no label descriptions to sharpen")
    with_truth = [
        rollout
        for rollout in request.rollouts
        if rollout.expected and any(field in rollout.expected for field in agent.label_components)
    ]
    if not with_truth:
        return LearnedKeywords({}, 0, 0, "no rollout has an expected value for a field with label descriptions")

    keywords: Keywords = {}
    for field, component_name in agent.label_components.items():
        lines = text.label_lines(request.components[component_name], agent.output_fields[field])
        field_keywords = _field_keywords(request.rollouts, field, lines, limit)
        if field_keywords:
            keywords[field] = field_keywords
    misclassified = {
        rollout.input_text
        for rollout in with_truth
        if any(_is_wrong(rollout, field) for field in agent.label_components if field in (rollout.expected or {}))
    }
    problem = None
    if not keywords:
        problem = (
            f"no word is distinctive of a label in at least {MIN_KEYWORD_POSTS} posts"
            " without already being in its description"
        )
    return LearnedKeywords(keywords, len({rollout.input_text for rollout in with_truth}), len(misclassified), problem)


def _is_wrong(rollout: Rollout, field: str) -> bool:
    expected = rollout.expected or {}
    return rollout.output is None or rollout.output.get(field) != expected[field]


def _field_keywords(
    rollouts: Sequence[Rollout], field: str, lines: Mapping[str, str], limit: int
) -> dict[str, tuple[str, ...]]:
    """Per label, the tokens with the highest smoothed log-odds of appearing in its posts versus the others."""
    runs: Counter[tuple[str, str]] = Counter()
    wrong_runs: Counter[tuple[str, str]] = Counter()
    for rollout in rollouts:
        if rollout.expected and field in rollout.expected:
            post_and_label = (rollout.input_text, rollout.expected[field])
            runs[post_and_label] += 1
            wrong_runs[post_and_label] += _is_wrong(rollout, field)
    posts = [
        _LabelledPost(
            label=label,
            tokens=text.token_set(post_text),
            weight=1 + (MISCLASSIFIED_WEIGHT - 1) * wrong_runs[(post_text, label)] / runs[(post_text, label)],
        )
        for post_text, label in sorted(runs)
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
        if ranked[:limit]:
            keywords[label] = tuple(token for _, _, token in ranked[:limit])
    return keywords


def _log_odds(with_token: float, total: float) -> float:
    return math.log((with_token + LOG_ODDS_SMOOTHING) / (total - with_token + LOG_ODDS_SMOOTHING))


# --- candidates ----------------------------------------------------------------------------------


def apply_edit(request: ProposeRequest, edit: Edit) -> tuple[dict[str, str], Keywords]:
    """The edited components, and the keywords of the label lines that actually changed."""
    agent = request.agent
    components = dict(request.components)
    applied: Keywords = {}
    for field, keywords_by_label in edit.keywords.items():
        name = agent.label_components[field]
        before = text.label_lines(components[name], keywords_by_label.keys())
        components[name] = text.with_keywords(components[name], keywords_by_label)
        after = text.label_lines(components[name], keywords_by_label.keys())
        changed = {label: words for label, words in keywords_by_label.items() if before[label] != after[label]}
        if changed:
            applied[field] = changed
    if edit.demonstrations:
        components[agent.examples_component] = render_examples(edit.demonstrations)
    return components, applied


def draft_candidates(
    request: ProposeRequest,
    keywords: Keywords,
    pool: Sequence[Demonstration],
    primary: tuple[Demonstration, ...],
    rng: random.Random,
) -> list[Draft]:
    """Distinct edits in strategy order: combined, descriptions, examples, then alternatives."""
    params = request.params
    examples_component = request.agent.examples_component
    drafts: list[Draft] = []

    def consider(edit: Edit, required_strategy: str | None, suffix: str = "") -> None:
        components, applied = apply_edit(request, edit)
        examples_changed = components[examples_component] != request.components[examples_component]
        changed = "+".join(
            part for part, did_change in (("descriptions", bool(applied)), ("examples", examples_changed)) if did_change
        )
        if not changed or (required_strategy is not None and changed != required_strategy):
            return
        if any(components == draft.components for draft in drafts):
            return
        shown = edit.demonstrations if examples_changed else ()
        drafts.append(Draft(changed + suffix, components, applied, shown))

    for strategy, edit in (
        ("descriptions+examples", Edit(keywords, primary)),
        ("descriptions", Edit(keywords, ())),
        ("examples", Edit({}, primary)),
    ):
        if len(drafts) < params.num_candidates:
            consider(edit, strategy)

    shown_posts = {demonstration.post for demonstration in primary}
    for alternative in range(1, MAX_ALTERNATIVES + 1):
        if len(drafts) >= params.num_candidates:
            break
        sample = select_demonstrations(pool, params.max_examples, rng, avoid=frozenset(shown_posts))
        shown_posts.update(demonstration.post for demonstration in sample)
        fewer_keywords = _truncated(keywords, max(1, params.max_keywords // (alternative + 1)))
        consider(Edit(fewer_keywords, sample), None, f"/alt{alternative}")
    return drafts


def _truncated(keywords: Keywords, limit: int) -> Keywords:
    return {field: {label: words[:limit] for label, words in by_label.items()} for field, by_label in keywords.items()}


# --- proxy score ---------------------------------------------------------------------------------


def keyword_overlap_accuracy(
    request: ProposeRequest, components: Mapping[str, str], post_tokens: Mapping[str, frozenset[str]]
) -> float | None:
    """Fraction of expected field values a keyword-overlap classifier gets right; None without ground truth.

    For a field with label descriptions, the prediction is the label whose line shares the most words
    with the post; on a tie, or for fields without descriptions, it is what the agent actually answered.
    """
    agent = request.agent
    line_tokens = {
        field: {
            label: text.token_set(line)
            for label, line in text.label_lines(components[name], agent.output_fields[field]).items()
        }
        for field, name in agent.label_components.items()
    }
    right = 0
    total = 0
    for rollout in request.rollouts:
        answered = rollout.output or {}
        for field, truth in (rollout.expected or {}).items():
            prediction = answered.get(field)
            if field in line_tokens:
                overlaps = {label: len(post_tokens[rollout.input_text] & tokens) for label, tokens in line_tokens[field].items()}
                best = max(overlaps.values())
                winners = [label for label, overlap in overlaps.items() if overlap == best]
                if len(winners) == 1:
                    prediction = winners[0]
            right += prediction == truth
            total += 1
    return round(right / total, 4) if total else None


# --- explanations --------------------------------------------------------------------------------


def _rationale(draft: Draft, learned: LearnedKeywords, score: float | None, incumbent_score: float | None) -> str:
    clauses = []
    if draft.applied_keywords:
        listed = "; ".join(
            f"{label}: {', '.join(words)}"
            for by_label in draft.applied_keywords.values()
            for label, words in by_label.items()
        )
        clauses.append(
            f"Label descriptions now end with words that set each label's posts apart in {learned.posts} posts"
            f" with ground truth ({learned.misclassified} misclassified by the current prompt, weighted up): {listed}"
        )
    if draft.shown_demonstrations:
        combinations = list(dict.fromkeys("/".join(demonstration.labels) for demonstration in draft.shown_demonstrations))
        clauses.append(
            f"The examples now show {len(draft.shown_demonstrations)} top-reward runs covering"
            f" {len(combinations)} label combinations ({', '.join(combinations)})"
        )
    if score is not None and incumbent_score is not None:
        clauses.append(f"Keyword-overlap proxy on the training rollouts: {score:.2f} (current prompt {incumbent_score:.2f})")
    return " ".join(f"{clause}." for clause in clauses)


def _note(drafts: Sequence[Draft], wanted: int, learned: LearnedKeywords, pool_problem: str | None) -> str | None:
    if len(drafts) >= wanted:
        return None
    reasons = []
    if learned.problem:
        reasons.append(learned.problem)
    elif not any(draft.applied_keywords for draft in drafts):
        reasons.append("the learned keywords are already in the label descriptions")
    if pool_problem:
        reasons.append(pool_problem)
    elif not any(draft.shown_demonstrations for draft in drafts):
        reasons.append("the chosen examples are already in the prompt")
    if not reasons:
        reasons.append("too few top-reward posts and keywords for more distinct alternatives")
    summary = "nothing to learn" if not drafts else f"only {len(drafts)} distinct candidates of {wanted} requested"
    return f"{summary}: {'; '.join(reasons)}"
