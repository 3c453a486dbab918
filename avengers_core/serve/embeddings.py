"""Embeddings (issue 21): Ollama's `/api/embed` and OpenAI's `/v1/embeddings`.

A served model is relayed to its engine (the request as sent, `model` renamed, when the
protocols match; mapped when they differ). The router's names (`avengers`,
`avengers-route`) and the profile's embedder id embed with the profile's own embedder, the
one routing uses (vectors L2-normalised, as Ollama's are). Any other name is a 404 that
says which names embed.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from typing import Any

from anyio import to_thread

from avengers_core.serve.fields import NO_EFFECT
from avengers_core.serve.passthrough import RELAYED_STATUSES, error_message, upstream_for
from avengers_core.serve.requests import ServeError, bad, model_of
from avengers_core.serve.service import ROUTER_MODELS, Service


def texts_of(value: Any) -> list[str]:
    """`input`: a string or a non-empty list of strings (400 otherwise)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(t, str) for t in value):
        return list(value)
    raise bad("input: expected a string or a non-empty list of strings")


def _profile_vectors(service: Service, texts: list[str]) -> list[list[float]]:
    return service.embed(texts)


def _which(service: Service, model: str) -> str | None:
    """None for the profile's embedder, else the served model's name; 404 when neither."""
    embedder_id = getattr(service.embedder, "id", "")
    if model.removesuffix(":latest") in ROUTER_MODELS or model == embedder_id:
        return None
    name = service.resolve(model)
    if name is None:
        raise ServeError(404, f"model {model!r} not found: embed with a served embedding "
                              f"model, or with avengers (the profile's embedder, "
                              f"{embedder_id})", code="model_not_found")
    return name


def _post(up: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {up.api_key}"} if up.api_key else {}
    try:
        r = httpx.post(up.base + path, json=body, headers=headers, timeout=httpx.Timeout(
            up.timeouts.total, connect=up.timeouts.connect))
    except httpx.HTTPError as e:
        raise ServeError(502, f"{up.model} @ {up.base}: {type(e).__name__}: {e}") from None
    if r.status_code >= 400:
        message = error_message(r.content)
        if r.status_code in RELAYED_STATUSES:
            raise ServeError(r.status_code, message)
        raise ServeError(502, f"the engine answered HTTP {r.status_code}: {message}")
    obj = r.json()
    if not isinstance(obj, dict):
        raise ServeError(502, "the engine's embedding reply is not a JSON object")
    return obj


def _check_mapped(body: Mapping[str, Any], allowed: set[str]) -> None:
    for key in body:
        if key not in allowed and key not in NO_EFFECT:
            raise bad(f"{key}: no counterpart in the engine's embedding API")


def _ollama_embed(service: Service, body: dict[str, Any]) -> dict[str, Any]:
    model = model_of(body)
    texts = texts_of(body.get("input"))
    name = _which(service, model)
    if name is None:
        return {"model": model, "embeddings": _profile_vectors(service, texts)}
    up = upstream_for(service.engines, name)
    if up.protocol == "ollama":
        return {**_post(up, "/api/embed", {**body, "model": up.model}), "model": model}
    _check_mapped(body, {"model", "input", "dimensions", "truncate"})
    if body.get("truncate") is False:
        raise bad("truncate: false has no counterpart in the OpenAI API")
    sent: dict[str, Any] = {"model": up.model, "input": texts}
    if body.get("dimensions") is not None:
        sent["dimensions"] = body["dimensions"]
    got = _post(up, "/embeddings", sent)
    data = sorted(got.get("data") or [], key=lambda d: d.get("index", 0))
    return {"model": model, "embeddings": [d.get("embedding") for d in data],
            "prompt_eval_count": int((got.get("usage") or {}).get("prompt_tokens") or 0)}


def _openai_embeddings(service: Service, body: dict[str, Any]) -> dict[str, Any]:
    model = model_of(body)
    texts = texts_of(body.get("input"))
    fmt = body.get("encoding_format", "float")
    if fmt not in (None, "float", "base64"):
        raise bad('encoding_format: expected "float" or "base64"')
    name = _which(service, model)
    if name is not None:
        up = upstream_for(service.engines, name)
        if up.protocol == "openai":
            return {**_post(up, "/embeddings", {**body, "model": up.model}), "model": model}
        _check_mapped(body, {"model", "input", "dimensions", "encoding_format"})
        sent: dict[str, Any] = {"model": up.model, "input": texts}
        if body.get("dimensions") is not None:
            sent["dimensions"] = body["dimensions"]
        got = _post(up, "/api/embed", sent)
        vectors, tokens = got.get("embeddings") or [], int(got.get("prompt_eval_count") or 0)
    else:
        vectors, tokens = _profile_vectors(service, texts), 0

    def encoded(v: list[float]) -> Any:
        if fmt != "base64":
            return v
        return base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode()

    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": encoded(v)}
                     for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


async def ollama_embed(service: Service, body: dict[str, Any]) -> dict[str, Any]:
    """Ollama's `/api/embed` reply for `body`; ServeError 400/404/502."""
    return await to_thread.run_sync(_ollama_embed, service, body)


async def openai_embeddings(service: Service, body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's `/v1/embeddings` reply for `body`; ServeError 400/404/502."""
    return await to_thread.run_sync(_openai_embeddings, service, body)
