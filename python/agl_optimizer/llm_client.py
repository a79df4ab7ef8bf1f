"""A tiny OpenAI-compatible chat client on the standard library (urllib + json).

Temperature 0, so a deterministic endpoint gives the same answers to the same request. A connection
reset is retried once (a keep-alive connection closed by the server is common and harmless); every
other failure raises LlmError, which the command line turns into a crash exit, so the calling
activity retries the whole call.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from agl_optimizer.contract import LlmEndpoint

BODY_EXCERPT_CHARS = 300


class LlmError(Exception):
    """The endpoint failed: unreachable, timed out, an HTTP error, or an answer that is not a chat completion."""


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


class ChatClient:
    def __init__(self, endpoint: LlmEndpoint) -> None:
        self.endpoint = endpoint
        self.url = f"{endpoint.base_url}/chat/completions"
        self.calls = 0

    def complete(self, messages: list[ChatMessage], max_tokens: int) -> str:
        """The text of the first choice; an empty string when the endpoint answered with no content."""
        body = {
            "model": self.endpoint.model,
            "messages": [{"role": message.role, "content": message.content} for message in messages],
            "temperature": 0,
            "max_tokens": max_tokens,
        }
        self.calls += 1
        try:
            answer = self._post(body)
        except ConnectionResetError:
            try:
                answer = self._post(body)
            except ConnectionResetError:
                raise LlmError(f"POST {self.url} failed: the connection was reset twice") from None
        return _content_of(answer, self.url)

    def _post(self, body: dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.endpoint.api_key:
            headers["Authorization"] = f"Bearer {self.endpoint.api_key}"
        request = urllib.request.Request(self.url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.endpoint.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            excerpt = _excerpt(error.read())
            raise LlmError(f"POST {self.url} answered HTTP {error.code} {error.reason}: {excerpt}") from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, ConnectionResetError):
                raise error.reason from None
            if isinstance(error.reason, TimeoutError):
                raise self._timed_out() from None
            raise LlmError(f"POST {self.url} failed: {error.reason}") from None
        except TimeoutError:
            raise self._timed_out() from None
        except ConnectionResetError:
            raise
        except (OSError, http.client.HTTPException) as error:
            raise LlmError(f"POST {self.url} failed: {error!r}") from None
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise LlmError(f"POST {self.url} answered with a body that is not JSON: {_excerpt(raw)}") from None


    def _timed_out(self) -> LlmError:
        return LlmError(f"POST {self.url} timed out after {self.endpoint.timeout_s:g} s (llm.timeout_s)")


def _content_of(answer: Any, url: str) -> str:
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise LlmError(f"POST {url} answered without choices, not a chat completion: {_excerpt(json.dumps(answer).encode())}")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, str) else ""


def _excerpt(raw: bytes) -> str:
    shown = " ".join(raw.decode("utf-8", errors="replace").split())
    return shown if len(shown) <= BODY_EXCERPT_CHARS else shown[: BODY_EXCERPT_CHARS - 3] + "..."
