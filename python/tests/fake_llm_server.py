"""A FAKE OpenAI-compatible chat endpoint for the tests, served from a thread of the pytest process.

`answer(request_body) -> (status, body)` decides every reply; requests are recorded in order.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agl_optimizer.apo import CRITIC_SYSTEM, DESCRIPTION_SYSTEM, REWRITE_SYSTEM
from agl_optimizer.gepa import REFLECT_SYSTEM

Answer = Callable[[dict[str, Any]], tuple[int, Any]]
# Replies with this status close the connection without answering.
RESET = -1


@dataclass
class FakeLlmServer:
    base_url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


def completion(content: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1,
        "model": "fake-critic",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def system_text(body: dict[str, Any]) -> str:
    return next((message["content"] for message in body["messages"] if message["role"] == "system"), "")


def user_text(body: dict[str, Any]) -> str:
    return next((message["content"] for message in body["messages"] if message["role"] == "user"), "")


def part_to_rewrite(body: dict[str, Any]) -> str:
    """The component a rewrite request quotes after `reads now:`."""
    quoted = user_text(body).split('reads now:\n"""\n', 1)[1]
    return quoted.rsplit('\n"""', 1)[0]


def canned(critique: str, description: str, rule: str, rewrite: Callable[[str], str] | None = None) -> Answer:
    """Answers critique, description, rule, rewrite and (gepa) reflection requests with fixed texts, as a
    deterministic LLM would.

    A rewrite is `rewrite(the part to rewrite)`; by default the part with one sentence added. A reflection
    gets the same text, inside ``` fences after a line of commentary, as GEPA's prompt asks.
    """

    def answer(body: dict[str, Any]) -> tuple[int, Any]:
        system = system_text(body)
        if system == CRITIC_SYSTEM:
            return 200, completion(critique)
        if system == DESCRIPTION_SYSTEM:
            return 200, completion(description)
        if system in (REWRITE_SYSTEM, REFLECT_SYSTEM):
            part = part_to_rewrite(body)
            new_text = rewrite(part) if rewrite else f"{part}\nCheck every answer against the message before you reply."
            return 200, completion(f"Here is the improved part:\n```\n{new_text}\n```" if system == REFLECT_SYSTEM else new_text)
        return 200, completion(rule)

    return answer


@contextmanager
def fake_llm_server(answer: Answer) -> Iterator[FakeLlmServer]:
    state = FakeLlmServer(base_url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(body)
            state.headers.append(dict(self.headers))
            status, reply = answer(body)
            if status == RESET:
                self.close_connection = True
                self.connection.close()
                return
            payload = (reply if isinstance(reply, str) else json.dumps(reply)).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
            """Silent: the tests assert on the recorded requests instead."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
