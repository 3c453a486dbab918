"""The `openai` backend: any OpenAI-compatible server through the official `openai` client.

One protocol covers llama.cpp's `llama-server`, llama-cpp-python's server, vLLM, SGLang,
LM Studio and Ollama's own `/v1`. A call asks for `n` choices in one streamed request
(vLLM, SGLang and `llama-server` honour `n`; llama-cpp-python's server and Ollama's `/v1`
return one choice), and reports every choice it got: the vote draws the missing ones
itself. Reasoning arrives as `delta.reasoning_content` (vLLM, SGLang, llama.cpp) or
`delta.reasoning` (Ollama's `/v1`) and is kept apart from the answer. The client never
retries on its own (`max_retries=0`): a 429 or 503 before any token is retried by
:mod:`avengers_core.backends.retry` within the sample's timeout, any other error becomes a
one-line reason at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from avengers_core import config
from avengers_core.backends.base import (
    DEFAULT_TEMPERATURE,
    Backend,
    BackendUnavailable,
    Choice,
    StreamCall,
    Timeouts,
    TokenCallback,
)
from avengers_core.backends.errors import SampleError, one_line
from avengers_core.backends.retry import busy_error
from avengers_core.backends.transport import (
    http_reason,
    short_error,
    ssl_context,
    tracking_transport,
)
from avengers_core.redact import register_secret

DEFAULT_HOST = "http://127.0.0.1:8000/v1"
"""The default base URL: vLLM's and llama-cpp-python's default port (`OPENAI_BASE_URL`
overrides it, as for the `openai` client itself)."""
NO_KEY = "none"  # local servers take any key; the client insists on one
CUT_STREAM = "stream ended before any choice ([DONE] too early)"
CUT_CHOICE = "stream ended before the choice finished (no [DONE])"
"""A stream that ended early: llama-cpp-python's server ends the stream in progress this
way when another request arrives (unless started with `--interrupt_requests false`)."""


def resolve_base_url(host: str | None = None) -> str:
    """The base URL: the argument, else `$OPENAI_BASE_URL`, else :data:`DEFAULT_HOST`.

    A bare `host:port` gets `http://`, and a URL with no path gets `/v1` (the path every
    OpenAI-compatible engine serves).
    """
    raw = (host or config.openai_base_url() or DEFAULT_HOST).strip().rstrip("/")
    if "://" not in raw:
        raw = "http://" + raw
    if urlsplit(raw).path in ("", "/"):
        raw += "/v1"
    return raw


def _http_client(timeouts: Timeouts, transport: Any = None) -> Any:
    import httpx2

    timeout = httpx2.Timeout(timeouts.total, connect=timeouts.connect, read=timeouts.first_token)
    if transport is None:
        transport = httpx2.HTTPTransport(verify=ssl_context("httpx2"), retries=0)
    return httpx2.Client(timeout=timeout, transport=transport)


def _client(host: str, api_key: str | None, timeouts: Timeouts, transport: Any = None) -> Any:
    import openai

    return openai.OpenAI(
        base_url=host,
        api_key=api_key or NO_KEY,
        max_retries=0,
        http_client=_http_client(timeouts, transport),
    )


class OpenAICall(StreamCall):
    """One streaming `/chat/completions` request for `n` choices."""

    def __init__(
        self,
        host: str,
        model: str,
        prompt: str,
        *,
        api_key: str | None = None,
        seed: int | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        n: int = 1,
        timeouts: Timeouts | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(host, model, max(1, int(n)), timeouts or Timeouts())
        self.prompt = prompt
        self.api_key = api_key
        self.params: dict[str, Any] = {"temperature": temperature}
        if seed is not None:
            self.params["seed"] = seed
        if self.n > 1:
            self.params["n"] = self.n
        extra = dict(options or {})
        think = extra.pop("think", None)
        if extra.get("max_tokens") is not None:
            self.params["max_tokens"] = int(extra.pop("max_tokens"))
        for key in ("stop", "top_p"):  # serve's per-sample fields (issue 21)
            if extra.get(key) is not None:
                self.params[key] = extra.pop(key)
        fmt = extra.pop("format", None)
        if fmt is not None:
            self.params["response_format"] = (
                {"type": "json_object"} if fmt == "json"
                else {"type": "json_schema", "json_schema": {"name": "format", "schema": fmt}})
        if think is False:
            # vLLM and SGLang pass chat_template_kwargs to the template (Qwen3, DeepSeek)
            self.params["extra_body"] = {"chat_template_kwargs": {"enable_thinking": False}}
        elif isinstance(think, str):
            self.params["reasoning_effort"] = think
        self._transport, self._abort = tracking_transport("httpx2")

    def _close_connections(self) -> None:
        self._abort()

    def _stream(self, on_token: TokenCallback | None) -> list[Choice]:
        import openai

        client = _client(self.host, self.api_key, self.timeouts, self._transport)
        choices: dict[int, Choice] = {}
        finished: set[int] = set()
        stream = None
        try:
            stream = client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": self.prompt}],
                stream=True,
                stream_options={"include_usage": True},  # usage: a server that cannot ignores it
                **self.params,
            )
            for chunk in stream:
                if self.aborted is not None:
                    break
                usage = getattr(chunk, "usage", None)
                if usage is not None:  # the last chunk: usage of the whole request
                    first = choices.setdefault(0, Choice())
                    first.prompt_tokens = usage.prompt_tokens
                    first.completion_tokens = usage.completion_tokens
                for c in chunk.choices or ():
                    choice = choices.setdefault(c.index, Choice())
                    delta = c.delta
                    if delta is not None:
                        extra = delta.model_extra or {}
                        thought = extra.get("reasoning_content") or extra.get("reasoning")
                        if isinstance(thought, str):
                            choice.thinking += thought
                        if delta.content:
                            choice.text += delta.content
                            if on_token is not None:
                                on_token(c.index, delta.content)
                    if c.finish_reason is not None:
                        finished.add(c.index)
                        choice.truncated = c.finish_reason == "length"
                        choice.finish_reason = c.finish_reason
            if self.aborted is not None:
                raise SampleError(self.aborted)
            if not choices:
                raise SampleError(CUT_STREAM)
            for index, choice in choices.items():
                if index not in finished:
                    choice.error = CUT_CHOICE
            return [choices[i] for i in sorted(choices)]
        except SampleError:
            raise
        except json.JSONDecodeError:
            raise SampleError("bad line from server (not JSON)") from None
        except openai.APIError as exc:
            if self.aborted is not None:
                raise SampleError(self.aborted) from None
            started = any(c.text or c.thinking for c in choices.values())
            reason = _reason(exc, self.host, self.model, self.timeouts, started)
            # issue 22: 429/503 before any token is a busy or loading engine: retried
            raise busy_error(exc, reason, started) or SampleError(reason) from None
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reason
            if self.aborted is not None:
                raise SampleError(self.aborted) from None
            raise SampleError(one_line(f"{type(exc).__name__}: {exc}")) from None
        finally:
            if stream is not None:
                stream.close()
            client.close()


def _reason(exc: Any, host: str, model: str, t: Timeouts, started: bool) -> str:
    """A short explanation of an `openai` client error."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = _message(exc)
        if status == 404:
            return one_line(f"model {model!r} not found on {host} ({message})")
        if status == 429:
            wait = exc.response.headers.get("retry-after")
            after = f", retry after {wait} s" if wait else ""
            return one_line(f"HTTP 429: rate limited{after} ({message})")
        return one_line(f"HTTP {status}: {message}")
    if isinstance(exc, openai.APIConnectionError):  # the httpx2 error is its cause
        return http_reason(exc.__cause__ or exc, host, t, started)
    return one_line(f"server error: {_message(exc)}")


def _message(exc: Any) -> str:
    """The server's own words: the error body's `message` (the client passes the JSON's
    `error` member as `body`), else the body as text, else the client's message."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    if isinstance(body, str) and body.strip():
        return body
    return str(getattr(exc, "message", "") or exc)


class OpenAIBackend(Backend):
    """A connection to one OpenAI-compatible base URL: list models, sample, embed.

    `supports_n`: True when the server returns `n` choices per request, False when it
    returns one, None when unknown (the vote finds out from the first reply).
    """

    name = "openai"

    def __init__(
        self,
        host: str | None = None,
        timeouts: Timeouts | None = None,
        *,
        api_key: str | None = None,
        supports_n: bool | None = None,
    ) -> None:
        super().__init__(resolve_base_url(host), timeouts)
        self.api_key = api_key if api_key is not None else config.openai_api_key()
        register_secret(self.api_key)  # never shown in a message (issue 20)
        self.supports_n = supports_n

    def list_models(self) -> list[str]:
        """Model ids from `GET /models`; raises BackendUnavailable if unreachable."""
        import openai

        client = _client(self.host, self.api_key, self.timeouts)
        try:
            page = client.models.list()
            return sorted(m.id for m in page.data if m.id)
        except openai.APIConnectionError as exc:
            raise BackendUnavailable(
                self.host,
                f"cannot reach the OpenAI-compatible server at {self.host} "
                f"({short_error(exc.__cause__ or exc)}); start it or pass --host",
            ) from None
        except openai.APIStatusError as exc:
            hint = " (is the base URL missing /v1?)" if exc.status_code == 404 else ""
            raise BackendUnavailable(
                self.host,
                one_line(f"{self.host}/models answered HTTP {exc.status_code}: "
                         f"{_message(exc)}{hint}"),
            ) from None
        finally:
            client.close()

    def stream_call(
        self,
        model: str,
        prompt: str,
        *,
        seed: int | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        n: int = 1,
        options: Mapping[str, Any] | None = None,
    ) -> OpenAICall:
        """A streaming request for `n` choices, ready to `run()` or `run_choices()`."""
        return OpenAICall(
            self.host,
            model,
            prompt,
            api_key=self.api_key,
            seed=seed,
            temperature=temperature,
            n=n,
            timeouts=self.timeouts,
            options=options,
        )

    def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        """Embeddings from `POST /embeddings`; raises SampleError on failure."""
        import openai

        client = _client(self.host, self.api_key, self.timeouts)
        try:
            resp = client.embeddings.create(model=model, input=texts)
            return [list(d.embedding) for d in sorted(resp.data, key=lambda d: d.index)]
        except openai.APIError as exc:
            raise SampleError(_reason(exc, self.host, model, self.timeouts, False)) from None
        finally:
            client.close()
