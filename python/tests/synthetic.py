"""A small synthetic request: 40 posts across four categories, some of them misclassified by the agent."""

from __future__ import annotations

import copy
from typing import Any

INSTRUCTIONS = (
    "You classify a social media post.\n\nCategories:\n{{categories}}\n\n"
    "Sentiment (how the author feels):\n{{sentiments}}\n{{examples}}\n"
    'Answer with a JSON object {"category": ..., "sentiment": ...}.'
)
CATEGORIES = (
    "Pick exactly one category.\n"
    "- technology: software, hardware, AI and programming\n"
    "- startups: founding, funding and growing a new company\n"
    "- product_management: roadmaps, user research, prioritizing features\n"
    "- general: anything else\n"
    "When unsure, prefer general."
)
SENTIMENTS = (
    "- positive: happy, excited, proud or grateful\n"
    "- neutral: factual or mixed\n"
    "- negative: frustrated, disappointed or worried"
)

# (post, expected category, expected sentiment, agent's category, agent's sentiment)
POSTS: list[tuple[str, str, str, str, str]] = [
    ("Just shipped our new Rust plugin, builds are 3x faster!", "technology", "positive", "technology", "positive"),
    ("Our kubernetes cluster finally deploys in minutes, love it", "technology", "positive", "technology", "positive"),
    ("The compiler upgrade broke our kubernetes deploy pipeline again", "technology", "negative", "technology", "negative"),
    ("Database latency doubled after the driver update, frustrated", "technology", "negative", "general", "negative"),
    ("Migrated the database to Postgres 17 this week", "technology", "neutral", "technology", "neutral"),
    ("Rust compiler errors are getting friendlier every release", "technology", "positive", "general", "positive"),
    ("Benchmarked the database driver: latency is flat under load", "technology", "neutral", "general", "neutral"),
    ("Wrote a tiny Rust crate to parse kubernetes manifests", "technology", "neutral", "technology", "neutral"),
    ("The deploy script ate my weekend, kubernetes config hell", "technology", "negative", "general", "negative"),
    ("Our compiler team cut latency of the build server in half", "technology", "positive", "technology", "positive"),
    ("We closed our seed round with amazing investors!", "startups", "positive", "startups", "positive"),
    ("Founders: talk to investors before your runway ends", "startups", "neutral", "startups", "neutral"),
    ("Our runway is six months and investors keep ghosting us", "startups", "negative", "startups", "negative"),
    ("Pitch deck tips from a founder who raised a seed round twice", "startups", "neutral", "general", "neutral"),
    ("Proud of my cofounder, we hit product market fit and extended runway", "startups", "positive", "product_management", "positive"),
    ("Investors passed on our pitch again, worried about the runway", "startups", "negative", "general", "negative"),
    ("Seed investors want founders who ship weekly", "startups", "neutral", "startups", "neutral"),
    ("Founder burnout is real, the pitch meetings never end", "startups", "negative", "general", "negative"),
    ("Grateful to our seed investors for believing in the founders", "startups", "positive", "startups", "positive"),
    ("Hired our first engineer, the founder life is wild", "startups", "positive", "startups", "positive"),
    ("Our roadmap for Q3 is finally public, stakeholders are happy", "product_management", "positive", "product_management", "positive"),
    ("Backlog grooming with stakeholders took three hours again", "product_management", "negative", "general", "negative"),
    ("Ten user interviews changed our roadmap priorities completely", "product_management", "neutral", "product_management", "neutral"),
    ("Prioritization frameworks help when the backlog explodes", "product_management", "neutral", "general", "neutral"),
    ("Stakeholders keep adding items to the roadmap, frustrated", "product_management", "negative", "product_management", "negative"),
    ("User interviews showed nobody reads the onboarding, love that insight", "product_management", "positive", "general", "positive"),
    ("How we cut the backlog in half with ruthless prioritization", "product_management", "positive", "product_management", "positive"),
    ("Roadmap review: three features moved, two dropped", "product_management", "neutral", "product_management", "neutral"),
    ("Our interviews with users keep contradicting stakeholders", "product_management", "negative", "startups", "negative"),
    ("Backlog triage notes from this sprint", "product_management", "neutral", "general", "neutral"),
    ("Beautiful weekend hiking with family, coffee at the summit", "general", "positive", "general", "positive"),
    ("Finished a great book on the train this morning", "general", "positive", "general", "positive"),
    ("Rainy weekend, stayed home with coffee and a book", "general", "neutral", "general", "neutral"),
    ("Missed my train again, worst commute of the year", "general", "negative", "general", "negative"),
    ("Family dinner tonight, then a long hiking trip", "general", "positive", "general", "neutral"),
    ("The coffee shop near the office closed, disappointed", "general", "negative", "general", "negative"),
    ("Book club picked a thriller for next month", "general", "neutral", "general", "neutral"),
    ("Hiking boots finally broke in after one weekend", "general", "neutral", "general", "positive"),
    ("Train delays all week, so tired of this", "general", "negative", "general", "negative"),
    ("Coffee with an old friend from school, lovely afternoon", "general", "positive", "general", "positive"),
]


def scored_rollout(rollout_id: str, task_id: str, prompt_id: str, post: tuple[str, str, str, str, str]) -> dict[str, Any]:
    """A run of `prompt_id` on a POSTS-shaped entry, rewarded by the share of fields it got right."""
    content, category, sentiment, answered_category, answered_sentiment = post
    right = (answered_category == category) + (answered_sentiment == sentiment)
    return {
        "id": rollout_id,
        "task_id": task_id,
        "prompt_id": prompt_id,
        "input": {"content": content},
        "output": {"category": answered_category, "sentiment": answered_sentiment},
        "expected": {"category": category, "sentiment": sentiment},
        "reward": right / 2,
        "rewards": [{"scorer": "ground-truth", "value": right / 2, "reason": f"{right} of 2 fields right"}],
        "error": None,
    }


def build_input(seed: int = 42, **params: int) -> dict[str, Any]:
    """Round 1 of llm-free: the incumbent is the only parent, and every rollout ran it."""
    rollouts = [scored_rollout(f"ro-{index:03d}", f"p{index:03d}", "incumbent", post) for index, post in enumerate(POSTS, start=1)]
    components = {
        "instructions": INSTRUCTIONS,
        "categories": CATEGORIES,
        "sentiments": SENTIMENTS,
        "examples": "",
    }
    return {
        "schema_version": 2,
        "command": "propose",
        "request_id": "cy-post-analyzer-20261125-abcd/round/1",
        "algorithm": "llm-free",
        "seed": seed,
        "round": 1,
        "params": {"num_candidates": 3, "max_examples": 6, "max_keywords": 6, **params},
        "agent": {
            "name": "post-analyzer",
            "input_text_field": "content",
            "output_fields": {
                "category": ["technology", "startups", "product_management", "general"],
                "sentiment": ["positive", "neutral", "negative"],
            },
            "label_components": {"category": "categories", "sentiment": "sentiments"},
            "examples_component": "examples",
        },
        "prompt": {"version": 1, "engine": "placeholders", "components": components},
        "parents": [{"id": "incumbent", "components": copy.deepcopy(components)}],
        "rollouts": rollouts,
        "llm": None,
    }


def build_apo_input(base_url: str, seed: int = 42, **params: int) -> dict[str, Any]:
    """Round 1 of apo against an OpenAI-compatible endpoint at `base_url`."""
    document = build_input(seed)
    document["algorithm"] = "apo"
    document["params"] = {"branch_factor": 2, "minibatch_size": 4, "max_tokens": 256, **params}
    document["llm"] = {"base_url": base_url, "model": "fake-critic", "api_key": "sk-test", "timeout_s": 10}
    return document


def next_round(document: dict[str, Any], output: dict[str, Any], parent_ids: list[str]) -> dict[str, Any]:
    """The next round's request as the workflow builds it: the chosen children become the parents, and
    their runs are the parents' original runs re-scored as if the children answered the same way, except
    that posts the first incumbent got wrong on sentiment are still wrong."""
    document = copy.deepcopy(document)
    chosen = [candidate for candidate in output["candidates"] if candidate["id"] in parent_ids]
    document["round"] = output["round"] + 1
    document["request_id"] = document["request_id"].rsplit("/", 1)[0] + f"/{document['round']}"
    document["parents"] = [{"id": candidate["id"], "components": candidate["components"]} for candidate in chosen]
    incumbent_runs = [rollout for rollout in document["rollouts"] if rollout["prompt_id"] == "incumbent"]
    for candidate in chosen:
        for rollout in incumbent_runs:
            run = copy.deepcopy(rollout)
            run["id"] = f"{candidate['id']}-{rollout['id']}"
            run["prompt_id"] = candidate["id"]
            document["rollouts"].append(run)
    return document


def with_malformed_rollouts(document: dict[str, Any]) -> dict[str, Any]:
    """Adds a failed run, a run with partial ground truth and a judge-scored run without ground truth."""
    document = copy.deepcopy(document)
    document["rollouts"] += [
        {
            "id": "ro-failed",
            "task_id": "p041",
            "prompt_id": "incumbent",
            "input": {"content": "Kubernetes deploy timed out twice today"},
            "output": None,
            "expected": {"category": "technology", "sentiment": "negative"},
            "reward": None,
            "rewards": [],
            "error": "model timeout after 30s",
        },
        {
            "id": "ro-partial",
            "task_id": "p042",
            "prompt_id": "incumbent",
            "input": {"content": "Investors loved the seed pitch"},
            "output": {"category": "startups", "sentiment": "positive"},
            "expected": {"category": "startups"},
            "reward": 1.0,
            "rewards": [{"scorer": "ground-truth", "value": 1.0}],
            "error": None,
        },
        {
            "id": "ro-judged",
            "task_id": None,
            "prompt_id": "incumbent",
            "input": {"content": "Short post"},
            "output": {"category": "general", "sentiment": "neutral", "reasoning": "nothing specific"},
            "expected": None,
            "reward": 0.8,
            "rewards": [{"scorer": "llm-judge", "value": 0.8, "reason": None}],
            "error": None,
        },
    ]
    return document
