"""The `ollama` backend: Ollama's native API through the official `ollama` package.

Every call has a connect, a first-token and a total timeout; a failed sample comes back
as a short reason; a cancel stops a request blocked connecting or reading (each call owns
its connection, see :mod:`avengers_core.backends.transport`). Reasoning models send their
trace in `message.thinking` (Ollama >= 0.12.4); it is kept apart from the answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

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

DEFAULT_HOST = "http://127.0.0.1:11434"


class OllamaUnavailable(BackendUnavailable):
    """The Ollama host cannot be reached; the message names the host and what to start."""

    def __init__(self, host: str, reason: str = "") -> None:
        detail = f" ({reason})" if reason else ""
        if reason.startswith("HTTP 404") and not re.search(r"/v1/?$", host):
            message = (
                f"{host} answers, but not as Ollama ({reason}); for an OpenAI-compatible "
                "server (llama.cpp, vLLM, SGLang, LM Studio) use --backend openai"
            )
        elif re.search(r"/v1/?$", host):  # issue 11: an OpenAI-compatible path pasted here
            message = (
                f"{host} is an OpenAI-compatible path, not an Ollama host{detail}; "
                "use --backend openai, or drop /v1 for Ollama's own API"
            )
        else:
            message = (
                f"cannot reach Ollama at {host}{detail}; start it with `ollama serve` "
                "or pass --host / set OLLAMA_HOST"
            )
        super().__init__(host, message)


def resolve_host(host: str | None = None) -> str:
    """The host to use: the argument, else `OLLAMA_HOST`, else the local default.

    Accepts the forms Ollama accepts (`host`, `host:port`, `:port`, full URLs).
    """
    from ollama._client import _parse_host  # the client's own parser: same rules as ollama

    raw = (host or config.ollama_host() or "").strip()
    return _parse_host(raw) if raw else DEFAULT_HOST


def _make_client(host: str, timeouts: Timeouts, transport: Any = None) -> Any:
    import httpx
    import ollama

    timeout = httpx.Timeout(timeouts.total, connect=timeouts.connect, read=timeouts.first_token)
    if transport is None:
        transport = httpx.HTTPTransport(verify=ssl_context(), retries=0)
    return ollama.Client(host=host, timeout=timeout, transport=transport)


class OllamaCall(StreamCall):
    """One streaming `/api/chat` request (Ollama returns one choice per request)."""

    def __init__(
        self,
        host: str,
        model: str,
        prompt: str,
        *,
        seed: int | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        timeouts: Timeouts | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(host, model, 1, timeouts or Timeouts())
        self.prompt = prompt
        extra = dict(options or {})
        self.think = extra.pop("think", None)
        self.format = extra.pop("format", None)  # "json" or a schema (serve, issue 21)
        max_tokens = extra.pop("max_tokens", None)
        self.options: dict[str, Any] = {"temperature": temperature, **extra}
        if max_tokens is not None:
            self.options["num_predict"] = int(max_tokens)
        if seed is not None:
            self.options["seed"] = seed
        self._transport, self._abort = tracking_transport()

    def _close_connections(self) -> None:
        self._abort()

    def _stream(self, on_token: TokenCallback | None) -> list[Choice]:
        client = _make_client(self.host, self.timeouts, self._transport)
        choice = Choice()
        parts: list[str] = []
        thoughts: list[str] = []
        stream = None
        try:
            done = False
            kwargs: dict[str, Any] = {}
            if self.think is not None:
                kwargs["think"] = self.think
            if self.format is not None:
                kwargs["format"] = self.format
            stream = client.chat(
                model=self.model,
                messages=[{"role": "user", "content": self.prompt}],
                stream=True,
                options=self.options,
                **kwargs,
            )
            for part in stream:
                if self.aborted is not None:
                    break
                thought = getattr(part.message, "thinking", None) or ""
                if thought:
                    thoughts.append(thought)
                text = part.message.content or ""
                if text:
                    parts.append(text)
                    if on_token is not None:
                        on_token(0, text)
                if part.done:
                    done = True
                    choice.truncated = getattr(part, "done_reason", None) == "length"
                    choice.finish_reason = getattr(part, "done_reason", None)
                    choice.prompt_tokens = getattr(part, "prompt_eval_count", None)
                    choice.completion_tokens = getattr(part, "eval_count", None)
                    break
            if self.aborted is not None:
                raise SampleError(self.aborted)
            if not done:
                raise SampleError("stream ended without done: true")
            choice.text, choice.thinking = "".join(parts), "".join(thoughts)
            return [choice]
        except SampleError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reason
            if self.aborted is not None:
                raise SampleError(self.aborted) from None
            started = bool(parts or thoughts)
            reason = _reason(exc, self.host, self.model, self.timeouts, started)
            # issue 22: 429/503 before any token is a busy or loading engine: retried
            raise busy_error(exc, reason, started) or SampleError(reason) from None
        finally:
            if stream is not None:
                stream.close()  # ends the response now, not when garbage-collected
            client.close()


def _reason(exc: Exception, host: str, model: str, t: Timeouts, started: bool) -> str:
    """A short explanation of why a request failed."""
    import ollama
    import pydantic

    if isinstance(exc, ollama.ResponseError):
        if exc.status_code == 404:
            return f"model {model!r} not found on {host} (try `ollama pull {model}`)"
        if exc.status_code == -1:
            return one_line(f"server error: {exc.error}")
        return one_line(f"HTTP {exc.status_code}: {exc.error}")
    if isinstance(exc, json.JSONDecodeError):
        return "bad line from server (not JSON)"
    if isinstance(exc, pydantic.ValidationError):
        return "unexpected reply from server"
    return http_reason(exc, host, t, started)


class OllamaBackend(Backend):
    """A connection to one Ollama host: list models, sample, embed."""

    name = "ollama"

    def __init__(self, host: str | None = None, timeouts: Timeouts | None = None) -> None:
        super().__init__(resolve_host(host), timeouts)

    def list_models(self) -> list[str]:
        """Names of the locally available models; raises OllamaUnavailable if unreachable."""
        import httpx
        import ollama

        client = _make_client(self.host, self.timeouts)
        try:
            resp = client.list()
        except (ConnectionError, httpx.TransportError) as exc:
            raise OllamaUnavailable(self.host, short_error(exc)) from None
        except ollama.ResponseError as exc:
            raise OllamaUnavailable(self.host, f"HTTP {exc.status_code}: {exc.error}") from None
        finally:
            client.close()
        return sorted(m.model for m in resp.models if m.model)

    def stream_call(
        self,
        model: str,
        prompt: str,
        *,
        seed: int | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        n: int = 1,
        options: Mapping[str, Any] | None = None,
    ) -> OllamaCall:
        """A streaming request ready to `run()` (Ollama has no `n`: one choice a call)."""
        return OllamaCall(
            self.host,
            model,
            prompt,
            seed=seed,
            temperature=temperature,
            timeouts=self.timeouts,
            options=options,
        )

    def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        """Embeddings from `/api/embed`; raises SampleError on failure."""
        client = _make_client(self.host, self.timeouts)
        try:
            return [list(v) for v in client.embed(model=model, input=texts).embeddings]
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reason
            raise SampleError(_reason(exc, self.host, model, self.timeouts, False)) from None
        finally:
            client.close()
