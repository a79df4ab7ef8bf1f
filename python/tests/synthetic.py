"""Synthetic contract v3 requests for three agent shapes.

- a classifier of posts (closed label sets with label components): 40 posts across four categories,
  some of them misclassified by the agent;
- a structured extractor (string, number and array fields, no label sets): funding announcements;
- a free-text agent that calls a tool: replies to customers of a shop.
"""

from __future__ import annotations

import copy
from typing import Any

from agl_optimizer.contract import build_output, parse_request, validate_output

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
CATEGORY_LABELS = ["technology", "startups", "product_management", "general"]
SENTIMENT_LABELS = ["positive", "neutral", "negative"]

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


def classifier_agent() -> dict[str, Any]:
    return {
        "name": "post-analyzer",
        "description": "Classifies a short social media post by category and sentiment.",
        "output": {
            "kind": "object",
            "schema": {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "category": {"type": "string", "enum": list(CATEGORY_LABELS)},
                    "sentiment": {"type": "string", "enum": list(SENTIMENT_LABELS)},
                },
                "required": ["category", "sentiment"],
                "additionalProperties": False,
            },
        },
        "components": ["instructions", "categories", "sentiments", "examples"],
        "editable": ["instructions", "categories", "sentiments", "examples"],
        "required_placeholders": ["categories", "sentiments", "examples"],
        "label_sets": {"category": list(CATEGORY_LABELS), "sentiment": list(SENTIMENT_LABELS)},
        "label_components": {"category": "categories", "sentiment": "sentiments"},
        "examples_component": "examples",
    }


def post_message(content: str) -> str:
    """The bundled post analyzer's user message."""
    return f"Post: {content}"


def scored_rollout(rollout_id: str, task_id: str, prompt_id: str, post: tuple[str, str, str, str, str]) -> dict[str, Any]:
    """A run of `prompt_id` on a POSTS-shaped entry, rewarded by the share of fields it got right."""
    content, category, sentiment, answered_category, answered_sentiment = post
    right = (answered_category == category) + (answered_sentiment == sentiment)
    return {
        "id": rollout_id,
        "task_id": task_id,
        "prompt_id": prompt_id,
        "input": {"content": content},
        "message": post_message(content),
        "output": {"category": answered_category, "sentiment": answered_sentiment},
        "expected": {"category": category, "sentiment": sentiment},
        "reward": right / 2,
        "rewards": [{"scorer": "ground-truth", "value": right / 2, "reason": f"{right} of 2 fields right"}],
        "error": None,
    }


def _request(agent: dict[str, Any], components: dict[str, str], rollouts: list[dict[str, Any]], request_id: str, seed: int, params: dict[str, int]) -> dict[str, Any]:
    return {
        "schema_version": 3,
        "command": "propose",
        "request_id": request_id,
        "algorithm": "llm-free",
        "seed": seed,
        "round": 1,
        "params": params,
        "agent": agent,
        "prompt": {"version": 1, "engine": "placeholders", "components": components},
        "parents": [{"id": "incumbent", "components": copy.deepcopy(components)}],
        "rollouts": rollouts,
        "llm": None,
    }


def build_input(seed: int = 42, **params: int) -> dict[str, Any]:
    """Round 1 of llm-free for the classifier: the incumbent is the only parent, and every rollout ran it."""
    rollouts = [scored_rollout(f"ro-{index:03d}", f"p{index:03d}", "incumbent", post) for index, post in enumerate(POSTS, start=1)]
    components = {
        "instructions": INSTRUCTIONS,
        "categories": CATEGORIES,
        "sentiments": SENTIMENTS,
        "examples": "",
    }
    return _request(
        classifier_agent(), components, rollouts, "cy-post-analyzer-20261125-abcd/round/1", seed,
        {"num_candidates": 3, "max_examples": 6, "max_keywords": 6, **params},
    )


EXTRACTOR_INSTRUCTIONS = (
    "You extract the facts of a funding announcement.\n\n"
    "Fields:\n"
    "- company: the company that raised the money\n"
    "- amount_usd: the amount in US dollars, a number, or null when it is not stated\n"
    "- investors: every investor named, in the order of the text\n\n"
    "{{examples}}\n\n"
    "Answer with JSON only."
)
EXTRACTOR_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "company": {"type": "string"},
        "amount_usd": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        "investors": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["company", "amount_usd", "investors"],
    "additionalProperties": False,
}

# (announcement, expected answer, the agent's answer)
ANNOUNCEMENTS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "Acme Robotics raised $5M in a seed round led by Northwind Ventures.",
        {"company": "Acme Robotics", "amount_usd": 5000000, "investors": ["Northwind Ventures"]},
        {"company": "Acme Robotics", "amount_usd": 5000000, "investors": ["Northwind Ventures"]},
    ),
    (
        "Bluefin Labs closes a 12 million dollar Series A with Harbor Capital and Tidewater Partners.",
        {"company": "Bluefin Labs", "amount_usd": 12000000, "investors": ["Harbor Capital", "Tidewater Partners"]},
        {"company": "Bluefin Labs", "amount_usd": 12000000, "investors": ["Harbor Capital"]},
    ),
    (
        "Cobalt Health announced new funding from Summit Fund; terms were not disclosed.",
        {"company": "Cobalt Health", "amount_usd": None, "investors": ["Summit Fund"]},
        {"company": "Cobalt Health", "amount_usd": 0, "investors": ["Summit Fund"]},
    ),
    (
        "Driftwood, a travel app, secured $750K from angel investors.",
        {"company": "Driftwood", "amount_usd": 750000, "investors": []},
        {"company": "Driftwood", "amount_usd": 750000, "investors": []},
    ),
    (
        "Ember Energy raised $40 million led by Greenfield Partners, with Oakline joining.",
        {"company": "Ember Energy", "amount_usd": 40000000, "investors": ["Greenfield Partners", "Oakline"]},
        {"company": "Ember Energy", "amount_usd": 40000000, "investors": ["Greenfield Partners", "Oakline"]},
    ),
    (
        "Fjord Analytics gets a $2.5M pre-seed from Polar Ventures.",
        {"company": "Fjord Analytics", "amount_usd": 2500000, "investors": ["Polar Ventures"]},
        {"company": "Fjord Analytics", "amount_usd": 2.5, "investors": ["Polar Ventures"]},
    ),
    (
        "Granite Security raised funding from Redwood Capital and Ironbridge; the amount stays private.",
        {"company": "Granite Security", "amount_usd": None, "investors": ["Redwood Capital", "Ironbridge"]},
        {"company": "Granite Security", "amount_usd": None, "investors": ["Redwood Capital", "Ironbridge"]},
    ),
    (
        "Harbor AI lands $8M Series A from Lighthouse Ventures.",
        {"company": "Harbor AI", "amount_usd": 8000000, "investors": ["Lighthouse Ventures"]},
        {"company": "Lighthouse Ventures", "amount_usd": 8000000, "investors": ["Harbor AI"]},
    ),
    (
        "Indigo Foods closed a $3M round; no investors were named.",
        {"company": "Indigo Foods", "amount_usd": 3000000, "investors": []},
        {"company": "Indigo Foods", "amount_usd": 3000000, "investors": []},
    ),
    (
        "Juniper Mobility raised $15 million from Crossroads Capital, Meridian Fund and Alder Partners.",
        {"company": "Juniper Mobility", "amount_usd": 15000000, "investors": ["Crossroads Capital", "Meridian Fund", "Alder Partners"]},
        {"company": "Juniper Mobility", "amount_usd": 15000000, "investors": ["Crossroads Capital", "Meridian Fund", "Alder Partners"]},
    ),
    (
        "Kestrel Drones picked up seed money from Falcon Angels; the size of the round was not shared.",
        {"company": "Kestrel Drones", "amount_usd": None, "investors": ["Falcon Angels"]},
        {"company": "Kestrel Drones", "amount_usd": None, "investors": ["Falcon Angels"]},
    ),
    (
        "Lumen Learning raised a $1M bridge from existing investors Beacon Fund.",
        {"company": "Lumen Learning", "amount_usd": 1000000, "investors": ["Beacon Fund"]},
        {"company": "Lumen Learning", "amount_usd": 1000000, "investors": []},
    ),
]


def extractor_agent() -> dict[str, Any]:
    return {
        "name": "funding-extractor",
        "description": "Extracts the company, the amount and the investors of a funding announcement.",
        "output": {"kind": "object", "schema": copy.deepcopy(EXTRACTOR_SCHEMA)},
        "components": ["instructions", "examples"],
        "editable": ["instructions", "examples"],
        "required_placeholders": ["examples"],
        "label_sets": {},
        "label_components": {},
        "examples_component": "examples",
    }


def _field_reward(expected: dict[str, Any], answered: dict[str, Any]) -> float:
    return round(sum(expected[name] == answered.get(name) for name in expected) / len(expected), 4)


def build_extractor_input(seed: int = 42, **params: int) -> dict[str, Any]:
    """Round 1 of llm-free for the extractor."""
    rollouts = []
    for index, (announcement, expected, answered) in enumerate(ANNOUNCEMENTS, start=1):
        reward = _field_reward(expected, answered)
        rollouts.append(
            {
                "id": f"ro-x{index:03d}",
                "task_id": f"a{index:03d}",
                "prompt_id": "incumbent",
                "input": {"announcement": announcement, "source": "newswire"},
                "message": f"Announcement:\n{announcement}",
                "output": answered,
                "expected": expected,
                "reward": reward,
                "rewards": [{"scorer": "field-accuracy", "value": reward, "reason": f"{reward:.0%} of fields right"}],
                "error": None,
            }
        )
    components = {"instructions": EXTRACTOR_INSTRUCTIONS, "examples": ""}
    return _request(extractor_agent(), components, rollouts, "cy-funding-extractor-20261201-ab12/round/1", seed, {"num_candidates": 3, "max_examples": 6, **params})


REPLIER_INSTRUCTIONS = (
    "You answer customers of an online shop by email.\n"
    "Look an order up with the lookupOrder tool before you say anything about it.\n"
    "Be brief and friendly.\n\n"
    "{{policy}}\n\n"
    "{{examples}}"
)
REPLIER_POLICY = "Refunds: within 30 days of delivery, to the original payment method."

# (customer message, order id or None, tool result, the agent's reply, reward, judge's reason, reference reply or None)
CUSTOMER_MESSAGES: list[tuple[str, str | None, dict[str, Any] | None, str, float, str, str | None]] = [
    ("Where is my order 1042?", "1042", {"status": "shipped", "carrier": "DHL"}, "Your order 1042 shipped with DHL; you will get it in two days.", 1.0, "answers with the tracked status", "Order 1042 has shipped with DHL."),
    ("Has order 2210 left the warehouse yet?", "2210", {"status": "packing"}, "Order 2210 is being packed and leaves tomorrow.", 1.0, "correct and brief", None),
    ("Can I get a refund for order 3301? It arrived broken.", "3301", {"status": "delivered", "delivered_days_ago": 5}, "Sorry about that! Order 3301 qualifies for a refund to your card within 30 days.", 1.0, "applies the policy", None),
    ("I want my money back for order 4410, delivered two months ago.", "4410", {"status": "delivered", "delivered_days_ago": 61}, "Sure, I refunded order 4410.", -0.5, "promised a refund outside the 30-day window", "Order 4410 was delivered 61 days ago, past the 30-day refund window."),
    ("where is 5120", "5120", None, "I cannot find anything.", 0.0, "did not look the order up", "Order 5120 is on its way."),
    ("Do you ship to Norway?", None, None, "Yes, we ship to Norway in 5 to 7 days.", 0.8, "helpful, could mention costs", None),
    ("My order 6001 shows delivered but nothing came.", "6001", {"status": "delivered", "delivered_days_ago": 1}, "Order 6001 was delivered yesterday.", 0.2, "ignored the complaint", "Sorry! Order 6001 is marked delivered yesterday; we will open a claim with the carrier."),
    ("Thanks, the package for order 7002 arrived!", "7002", {"status": "delivered"}, "Glad it arrived! Enjoy your order 7002.", 1.0, "friendly", None),
]


def replier_agent() -> dict[str, Any]:
    return {
        "name": "support-replier",
        "description": "Replies to customers of an online shop, looking orders up with a tool.",
        "output": {"kind": "text", "schema": None},
        "components": ["instructions", "policy", "examples"],
        "editable": ["instructions", "examples"],
        "required_placeholders": ["policy", "examples"],
        "label_sets": {},
        "label_components": {},
        "examples_component": "examples",
    }


def build_replier_input(seed: int = 42, **params: int) -> dict[str, Any]:
    """Round 1 of llm-free for the free-text agent with tool calls."""
    rollouts = []
    for index, (message, order_id, result, reply, reward, reason, reference) in enumerate(CUSTOMER_MESSAGES, start=1):
        rollout: dict[str, Any] = {
            "id": f"ro-s{index:03d}",
            "task_id": f"m{index:03d}",
            "prompt_id": "incumbent",
            "input": {"email": message},
            "message": f"Customer email:\n{message}",
            "output": {"text": reply},
            "expected": {"text": reference} if reference else None,
            "reward": reward,
            "rewards": [{"scorer": "support-judge", "value": reward, "reason": reason}],
            "error": None,
        }
        if order_id is not None:
            call: dict[str, Any] = {"name": "lookupOrder", "args": {"orderId": order_id}}
            if result is not None:
                call["result"] = result
            rollout["tool_calls"] = [call]
        rollouts.append(rollout)
    components = {"instructions": REPLIER_INSTRUCTIONS, "policy": REPLIER_POLICY, "examples": ""}
    return _request(replier_agent(), components, rollouts, "cy-support-replier-20261201-cd34/round/1", seed, {"num_candidates": 3, "max_examples": 6, **params})


ALGORITHM_PARAMS = {
    "llm-free": {"num_candidates": 3, "max_examples": 6, "max_keywords": 6},
    "few-shot": {"num_candidates": 3, "max_examples": 6},
    "apo": {"branch_factor": 2, "minibatch_size": 4, "max_tokens": 256},
    "gepa": {"max_tokens": 512},
}


def with_algorithm(document: dict[str, Any], algorithm: str, base_url: str | None = None, **params: int) -> dict[str, Any]:
    """The same request for another algorithm (apo and gepa need the OpenAI-compatible endpoint at `base_url`).

    For gepa it is the reflect step on `instructions`, with the incumbent's rollouts as its minibatch.
    """
    document = copy.deepcopy(document)
    document["algorithm"] = algorithm
    document["params"] = {**ALGORITHM_PARAMS[algorithm], **params}
    document["llm"] = None if base_url is None else {"base_url": base_url, "model": "fake-critic", "api_key": "sk-test", "timeout_s": 10}
    if algorithm == "gepa":
        document["gepa"] = {"step": "reflect", "component": "instructions"}
    return document


def propose_in_process(algorithm: Any, document: dict[str, Any]) -> dict[str, Any]:
    """What `python -m agl_optimizer propose` writes for `document`, run in this process by the algorithm's module; checked against the contract."""
    request = parse_request(document)
    algorithm.check_applicable(request)
    output = build_output(request, algorithm.propose(request, lambda message: None))
    validate_output(output, document)
    return output


def build_apo_input(base_url: str, seed: int = 42, **params: int) -> dict[str, Any]:
    """Round 1 of apo for the classifier against an OpenAI-compatible endpoint at `base_url`."""
    return with_algorithm(build_input(seed), "apo", base_url, **params)


def next_round(document: dict[str, Any], output: dict[str, Any], parent_ids: list[str]) -> dict[str, Any]:
    """The next round's request as the workflow builds it: the chosen children become the parents, and
    their runs are the parents' original runs re-scored as if the children answered the same way."""
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
    """Adds a failed run, a run with partial ground truth and a judge-scored run without ground truth (classifier)."""
    document = copy.deepcopy(document)
    document["rollouts"] += [
        {
            "id": "ro-failed",
            "task_id": "p041",
            "prompt_id": "incumbent",
            "input": {"content": "Kubernetes deploy timed out twice today"},
            "message": post_message("Kubernetes deploy timed out twice today"),
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
            "message": post_message("Investors loved the seed pitch"),
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
            "message": post_message("Short post"),
            "output": {"category": "general", "sentiment": "neutral", "reasoning": "nothing specific"},
            "expected": None,
            "reward": 0.8,
            "rewards": [{"scorer": "llm-judge", "value": 0.8, "reason": None}],
            "error": None,
        },
    ]
    return document
