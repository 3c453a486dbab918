"""Request fields across the protocols (issue 21): what a relay maps, what a vote honours.

Three tables, also written out in docs/SERVE.md:

- :data:`OPENAI_TO_OLLAMA` and :data:`OLLAMA_TO_OPENAI`: how a request is rewritten when the
  client's protocol is not the engine's (an OpenAI client in front of Ollama, an Ollama
  client in front of vLLM or llama.cpp). A field with no counterpart is refused with a 400
  naming it; fields that do not change the reply (:data:`NO_EFFECT`) are accepted and
  dropped. When the protocols match, the request is relayed as sent, only `model` renamed.
- :data:`VOTE_FIELDS`: what the voting model `avengers` does with each field: honours it
  per sample, answers with one routed sample instead of a vote (and says so in the
  `avengers` field), or refuses it.

Every refusal is a :class:`~avengers_core.serve.requests.ServeError` 400 whose message names
the field and what to do instead.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from typing import Any

from avengers_core.serve.requests import bad

NO_EFFECT = ("user", "metadata", "store", "service_tier", "keep_alive", "prompt_cache_key",
             "safety_identifier")
"""Fields that never change a reply's content (identifiers, storage, memory hints): a
cross-protocol relay and the vote accept and drop them."""

OPENAI_TO_OLLAMA: dict[str, str] = {
    "model": "model (the engine's name)",
    "messages": "messages (text parts joined; image_url data: URLs → images; tool_calls "
                "arguments parsed to objects; tool messages kept)",
    "stream": "stream (false when absent, as in the OpenAI API)",
    "temperature": "options.temperature",
    "top_p": "options.top_p",
    "seed": "options.seed",
    "stop": "options.stop (a string becomes a one-item list)",
    "max_tokens": "options.num_predict",
    "max_completion_tokens": "options.num_predict",
    "frequency_penalty": "options.frequency_penalty",
    "presence_penalty": "options.presence_penalty",
    "response_format": "format (json_object → \"json\", json_schema → its schema)",
    "tools": "tools",
    "tool_choice": "\"auto\" only (Ollama has no tool_choice); others 400",
    "parallel_tool_calls": "true only; false 400",
    "logprobs": "logprobs",
    "top_logprobs": "top_logprobs",
    "reasoning_effort": "think (none → false, minimal/low → low, medium, high)",
    "think": "think",
    "stream_options": "include_usage: the usage chunk is built from the eval counts",
    "n": "1 only (Ollama draws one choice); others 400",
    "prompt": "/v1/completions: /api/generate prompt, raw (no template)",
    "suffix": "/v1/completions: suffix",
    "echo": "false only; true 400",
    "best_of": "1 only; others 400",
}
"""OpenAI request field → what an Ollama engine gets. Anything else: 400 (or NO_EFFECT)."""

OLLAMA_TO_OPENAI: dict[str, str] = {
    "model": "model (the engine's name)",
    "messages": "messages (images → image_url data: URL parts; tool_calls arguments as "
                "JSON strings with ids; tool messages answer the preceding calls in order)",
    "prompt": "/api/generate: one user message (raw: /v1/completions prompt)",
    "system": "a system message first (/api/generate; a chat's top-level system too)",
    "images": "/api/generate: image_url parts of the user message",
    "stream": "stream (true when absent, as in Ollama's API)",
    "format": "response_format (\"json\" → json_object, a schema → json_schema)",
    "tools": "tools",
    "think": "true → nothing; false → chat_template_kwargs.enable_thinking false; a level "
             "→ reasoning_effort",
    "logprobs": "logprobs",
    "top_logprobs": "top_logprobs",
    "raw": "true → /v1/completions (the prompt as is)",
    "suffix": "/v1/completions suffix (with raw)",
    "options.temperature": "temperature",
    "options.top_p": "top_p",
    "options.seed": "seed",
    "options.stop": "stop",
    "options.num_predict": "max_tokens (-1 and -2: no limit, left out)",
    "options.frequency_penalty": "frequency_penalty",
    "options.presence_penalty": "presence_penalty",
    "options.top_k": "top_k (a vLLM, SGLang and llama.cpp extension)",
    "options.min_p": "min_p (a vLLM, SGLang and llama.cpp extension)",
}
"""Ollama request field → what an OpenAI-compatible engine gets. Anything else (for
example `options.num_ctx`, `template`, `context`): 400 (or NO_EFFECT)."""

VOTE_FIELDS: dict[str, str] = {
    "temperature / options.temperature": "per sample (0 becomes 0.7: a vote needs "
                                         "different samples)",
    "top_p / options.top_p": "per sample",
    "seed / options.seed": "the base of the per-sample seeds (sample i: seed + i)",
    "stop / options.stop": "per sample",
    "max_tokens / max_completion_tokens / options.num_predict": "per sample (capped by "
                                                                "--max-tokens)",
    "reasoning_effort / think": "per sample",
    "response_format / format": "per sample; the vote is over the parsed JSON (replies "
                                "that do not parse do not vote)",
    "stream_options.include_usage": "the usage chunk, summed over the samples",
    "tools offered (tool_choice absent, auto or none; no tool turn yet)": "voted on text "
        "answers, the tools left out (a model may always answer without calling one, as "
        "`auto` allows; Open WebUI offers its built-in tools with every chat); "
        "`avengers.notes` says so",
    "tool_choice required or a function / tool messages": "one routed sample (a vote "
                                                          "cannot merge tool calls); "
                                                          "`avengers.single` says why",
    "logprobs / top_logprobs": "one routed sample (the winner's log-probabilities would "
                               "not describe a vote)",
    "images (image_url parts, images)": "one routed sample; an engine without vision "
                                        "answers with its own error",
    "n > 1 / best_of > 1": "400 (the vote draws the samples; ask for one choice)",
    "echo": "400",
    "other sampling fields (frequency_penalty, logit_bias, options.top_k, options.num_ctx, "
    "...)": "400 naming the field: use avengers-route or a served model, which relay it",
}
"""What the voting model does with each request field (docs/SERVE.md has this table)."""

VOTE_HONOURED = {
    "openai": {"model", "messages", "stream", "temperature", "top_p", "seed", "stop",
               "max_tokens", "max_completion_tokens", "reasoning_effort", "think",
               "response_format", "stream_options", "n", "prompt", "best_of",
               "echo"},
    "ollama": {"model", "messages", "stream", "options", "format", "think", "prompt",
               "system"},
}
"""Top-level fields the vote takes (besides NO_EFFECT and those that make it one sample)."""
VOTE_OPTIONS = {"temperature", "top_p", "seed", "stop", "num_predict"}
"""Ollama `options` the vote honours per sample."""
SINGLE_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "logprobs", "top_logprobs",
                 "images")
"""Fields that make `avengers` answer with one routed sample (see VOTE_FIELDS)."""


TOOLS_NOTE = ("tools were offered but not required: the vote answered in text, without "
              "them (tool_choice 'required' asks for one routed sample that may call a tool)")


def tools_merely_offered(body: Mapping[str, Any]) -> bool:
    """True when `body` offers tools that no answer is required to call: `tool_choice`
    absent, "auto" or "none", and no tool turn in the conversation yet. Such a request is
    voted on text answers (an answer without a tool call is one `auto` allows)."""
    if body.get("tools") in (None, [], ""):
        return False
    if body.get("tool_choice") not in (None, "auto", "none"):
        return False
    return not any(isinstance(m, dict) and (m.get("tool_calls") or m.get("role") == "tool")
                   for m in body.get("messages") or ())


def single_reason(body: Mapping[str, Any]) -> str | None:
    """Why the vote cannot answer `body` (it is then answered by one routed sample), or
    None. Looks at tools (when an answer must call one), logprobs, images and tool turns
    in the conversation."""
    offered = tools_merely_offered(body)
    for key in SINGLE_FIELDS:
        value = body.get(key)
        if offered and key in ("tools", "tool_choice", "parallel_tool_calls"):
            continue
        if value not in (None, False, [], "", 0, "none"):
            return f"{key}: a vote cannot honour it, so one routed sample answered"
    for m in body.get("messages") or ():
        if not isinstance(m, dict):
            continue
        if m.get("tool_calls") or m.get("role") == "tool":
            return "tool calls in the conversation: one routed sample answered"
        if m.get("images") or _has_image(m.get("content")):
            return "images: one routed sample answered"
    return None


def _has_image(content: Any) -> bool:
    return isinstance(content, list) and any(
        isinstance(p, dict) and p.get("type") not in (None, "text") for p in content)


def check_vote_fields(body: Mapping[str, Any], protocol: str) -> None:
    """ServeError 400 for a field the vote neither honours nor hands to one sample.
    `protocol` is "openai" or "ollama"."""
    allowed = VOTE_HONOURED[protocol] | set(NO_EFFECT) | set(SINGLE_FIELDS)
    for key in body:
        if key not in allowed:
            raise bad(f"{key}: not honoured by the voting model (see docs/SERVE.md, what "
                      "the vote honours); use avengers-route or a served model, which relay "
                      "every field")
    options = body.get("options")
    if isinstance(options, dict):
        for key in options:
            if key not in VOTE_OPTIONS:
                raise bad(f"options.{key}: not honoured by the voting model (it honours "
                          f"{', '.join(sorted(VOTE_OPTIONS))}); use avengers-route or a "
                          "served model, which relay it")
    if protocol == "openai":
        if body.get("echo"):
            raise bad("echo: not served by the voting model (it answers with the winner)")
        best_of = body.get("best_of")
        if best_of not in (None, 1):
            raise bad("best_of: only 1 (the vote draws the samples)")


def stop_of(value: Any, key: str) -> list[str] | None:
    """`stop`: a string or a list of strings (OpenAI allows 4; Ollama any)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value)
    raise bad(f"{key}: expected a string or a list of strings")


def top_p_of(value: Any, key: str) -> float | None:
    """0 ≤ top_p ≤ 1 (OpenAI's and Ollama's range)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise bad(f"{key}: expected a number from 0 to 1")
    return float(value)


def json_format_of(body: Mapping[str, Any], protocol: str) -> str | dict[str, Any] | None:
    """The structured output asked for, in Ollama's terms: None (free text), "json" (any
    JSON object) or a JSON schema. OpenAI: `response_format` {type: text | json_object |
    json_schema}; Ollama: `format` "json" or a schema object."""
    if protocol == "ollama":
        fmt = body.get("format")
        if fmt in (None, ""):
            return None
        if fmt == "json" or isinstance(fmt, dict):
            return fmt
        raise bad('format: expected "json" or a JSON schema object')
    rf = body.get("response_format")
    if rf is None:
        return None
    if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema"):
        raise bad("response_format: expected {\"type\": \"text\" | \"json_object\" | "
                  "\"json_schema\"}")
    if rf["type"] == "text":
        return None
    if rf["type"] == "json_object":
        return "json"
    schema = (rf.get("json_schema") or {}).get("schema") if isinstance(
        rf.get("json_schema"), dict) else None
    if not isinstance(schema, dict):
        raise bad("response_format.json_schema.schema: expected a JSON schema object")
    return schema


def response_format(fmt: str | dict[str, Any]) -> dict[str, Any]:
    """Ollama's `format` as OpenAI's `response_format`."""
    if fmt == "json":
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "format", "schema": fmt}}


def ollama_format(rf: Any) -> str | dict[str, Any] | None:
    """OpenAI's `response_format` as Ollama's `format` (400 when malformed)."""
    return json_format_of({"response_format": rf}, "openai")


def canonical_json(text: str) -> str | None:
    """A reply's JSON, canonical (sorted keys, no spaces), so equal objects vote together;
    None when the text is not JSON (a ```json fence around it is allowed)."""
    t = text.strip()
    if t.startswith("```"):
        t = t.strip("`").removeprefix("json").strip()
    try:
        return json.dumps(json.loads(t), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False)
    except (json.JSONDecodeError, ValueError):
        return None


# -- OpenAI request → Ollama request -------------------------------------------------------


def _refuse(key: str, why: str) -> None:
    raise bad(f"{key}: {why}")


def openai_to_ollama(body: Mapping[str, Any], model: str, completions: bool = False
                     ) -> tuple[str, dict[str, Any]]:
    """(path, body) for an Ollama engine from an OpenAI chat (or, with `completions`,
    legacy completions) request; 400 for a field with no counterpart (OPENAI_TO_OLLAMA)."""
    out: dict[str, Any] = {"model": model, "stream": bool(body.get("stream", False))}
    options: dict[str, Any] = {}
    for key, value in body.items():
        if value is None or key in ("model", "stream") or key in NO_EFFECT:
            continue
        if key in ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty"):
            options[key] = value
        elif key == "stop":
            options["stop"] = stop_of(value, "stop")
        elif key in ("max_tokens", "max_completion_tokens"):
            options["num_predict"] = value
        elif key == "response_format":
            fmt = ollama_format(value)
            if fmt is not None:
                out["format"] = fmt
        elif key in ("tools", "logprobs", "top_logprobs", "think"):
            out[key] = value
        elif key == "tool_choice":
            if value != "auto":
                _refuse(key, 'Ollama has no tool_choice; only "auto" can be relayed')
        elif key == "parallel_tool_calls":
            if value is not True:
                _refuse(key, "Ollama has no parallel_tool_calls; only true can be relayed")
        elif key == "reasoning_effort":
            efforts = {"none": False, "minimal": "low", "low": "low", "medium": "medium",
                       "high": "high"}
            if value not in efforts:
                _refuse(key, f"expected one of {', '.join(efforts)}")
            out["think"] = efforts[value]
        elif key == "stream_options":
            if not isinstance(value, dict) or set(value) - {"include_usage"}:
                _refuse(key, "only include_usage can be served by an Ollama engine")
        elif key == "n":
            if value != 1:
                _refuse(key, "an Ollama engine draws one choice per request; ask for 1")
        elif key == "messages" and not completions:
            out["messages"] = [_message_to_ollama(m, i) for i, m in enumerate(value)]
        elif key == "prompt" and completions:
            out["prompt"] = value
            out["raw"] = True  # a legacy completion continues the text as is
        elif key == "suffix" and completions:
            out["suffix"] = value
        elif key == "echo" and completions:
            if value:
                _refuse(key, "an Ollama engine cannot echo the prompt")
        elif key == "best_of" and completions:
            if value != 1:
                _refuse(key, "an Ollama engine draws one choice per request")
        else:
            _refuse(key, "no counterpart in Ollama's API (see docs/SERVE.md, field "
                         "mapping); use a model served over the OpenAI API")
    if options:
        out["options"] = options
    return ("/api/generate" if completions else "/api/chat"), out


def _message_to_ollama(m: Any, i: int) -> dict[str, Any]:
    where = f"messages[{i}]"
    if not isinstance(m, dict) or not isinstance(m.get("role"), str):
        raise bad(f"{where}: expected an object with a string 'role'")
    out: dict[str, Any] = {"role": m["role"], "content": ""}
    content = m.get("content")
    images: list[str] = []
    if isinstance(content, str):
        out["content"] = content
    elif isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "image_url":
                images.append(_data_url_image(part.get("image_url"), f"{where}.content[{j}]"))
            else:
                raise bad(f"{where}.content[{j}]: expected a text or image_url part "
                          "(Ollama takes no other kind)")
        out["content"] = "\n".join(texts)
    elif content is not None:
        raise bad(f"{where}.content: expected a string or a list of parts")
    if images:
        out["images"] = images
    calls = m.get("tool_calls")
    if calls and not isinstance(calls, list):
        raise bad(f"{where}.tool_calls: expected a list")
    if calls:
        out["tool_calls"] = [_call_to_ollama(c, f"{where}.tool_calls[{k}]")
                             for k, c in enumerate(calls)]
    if m["role"] == "tool" and isinstance(m.get("name"), str):
        out["tool_name"] = m["name"]
    for key in ("thinking", "reasoning_content"):
        if isinstance(m.get(key), str):
            out["thinking"] = m[key]
    return out


def _data_url_image(image_url: Any, where: str) -> str:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
        raise bad(f"{where}.image_url: an Ollama engine takes images inline only "
                  "(a data:image/...;base64, URL)")
    return url.split(";base64,", 1)[1]


def _call_to_ollama(call: Any, where: str) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise bad(f"{where}: expected {{\"function\": {{\"name\", \"arguments\"}}}}")
    args = fn.get("arguments") or "{}"
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            raise bad(f"{where}.function.arguments: expected a JSON object string") from None
    return {"function": {"name": fn["name"], "arguments": args}}


# -- Ollama request → OpenAI request -------------------------------------------------------


def ollama_to_openai(body: Mapping[str, Any], model: str, generate: bool = False
                     ) -> tuple[str, dict[str, Any]]:
    """(path under the base URL, body) for an OpenAI-compatible engine from an Ollama
    `/api/chat` (or, with `generate`, `/api/generate`) request; 400 for a field with no
    counterpart (OLLAMA_TO_OPENAI)."""
    stream = body.get("stream", True)
    out: dict[str, Any] = {"model": model, "stream": stream is not False}
    if out["stream"]:
        out["stream_options"] = {"include_usage": True}  # for Ollama's eval counts
    raw = bool(body.get("raw")) and generate
    for key, value in body.items():
        if value is None or key in ("model", "stream", "options") or key in NO_EFFECT:
            continue
        if key == "format":
            if value != "":
                out["response_format"] = response_format(
                    json_format_of({"format": value}, "ollama"))  # type: ignore[arg-type]
        elif key in ("tools", "logprobs", "top_logprobs"):
            if value != []:  # the ollama client sends tools: [] (OpenAI refuses an empty list)
                out[key] = value
        elif key == "think":
            if value is False:
                out["chat_template_kwargs"] = {"enable_thinking": False}
            elif isinstance(value, str):
                out["reasoning_effort"] = value
        elif key == "messages" and not generate:
            out["messages"] = _messages_to_openai(value)
        elif key == "system" and not generate and isinstance(value, str):
            continue  # a chat's top-level system prompt (Open WebUI sends one): below
        elif generate and key in ("prompt", "system", "images", "raw", "suffix"):
            continue  # below
        else:
            _refuse(key, "no counterpart in the OpenAI API (see docs/SERVE.md, field "
                         "mapping); use a model served by Ollama")
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise bad("options: expected an object (temperature, seed, num_predict, ...)")
    for key, value in options.items():
        if value is None:
            continue
        if key in ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty",
                   "top_k", "min_p"):
            out[key] = value
        elif key == "stop":
            out["stop"] = stop_of(value, "options.stop")
        elif key == "num_predict":
            if isinstance(value, int) and value > 0:
                out["max_tokens"] = value
        else:
            _refuse(f"options.{key}", "no counterpart in the OpenAI API (the engine sets it "
                                      "when it starts); use a model served by Ollama")
    if not generate:
        if body.get("system"):
            out["messages"] = [{"role": "system", "content": body["system"]},
                               *out.get("messages", [])]
        return "/chat/completions", out
    prompt = body.get("prompt") or ""
    if raw:
        if body.get("images"):
            _refuse("images", "not with raw: a completion takes text only")
        out["prompt"] = prompt
        if body.get("suffix"):
            out["suffix"] = body["suffix"]
        return "/completions", out
    if body.get("suffix"):
        _refuse("suffix", "an OpenAI engine takes a suffix only as a raw completion "
                          "(raw: true)")
    messages: list[dict[str, Any]] = []
    if body.get("system"):
        messages.append({"role": "system", "content": body["system"]})
    messages.append(_user_to_openai(prompt, body.get("images")))
    out["messages"] = messages
    return "/chat/completions", out


def _user_to_openai(text: str, images: Any) -> dict[str, Any]:
    if not images:
        return {"role": "user", "content": text}
    if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
        raise bad("images: expected a list of base64 strings")
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    parts += [{"type": "image_url", "image_url": {"url": data_url(img)}} for img in images]
    return {"role": "user", "content": parts}


def data_url(image: str) -> str:
    """A base64 image (as Ollama takes them) as a data: URL, its type read from its first
    bytes (PNG, JPEG, GIF, WebP; else PNG)."""
    try:
        head = base64.b64decode(image[:24] + "=" * (-len(image[:24]) % 4), validate=False)
    except ValueError:  # binascii.Error: not base64; the engine will say so
        head = b""
    mime = "image/png"
    if head.startswith(b"\xff\xd8"):
        mime = "image/jpeg"
    elif head.startswith(b"GIF8"):
        mime = "image/gif"
    elif head[8:12] == b"WEBP":
        mime = "image/webp"
    return f"data:{mime};base64,{image}"


def _messages_to_openai(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list):
        raise bad("messages: expected a list of {role, content} objects")
    out: list[dict[str, Any]] = []
    open_calls: list[str] = []  # ids of tool calls not yet answered, in order
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise bad(f"messages[{i}]: expected an object with a string 'role'")
        content = m.get("content") or ""
        if not isinstance(content, str):
            raise bad(f"messages[{i}].content: expected a string")
        msg = _user_to_openai(content, m.get("images"))
        msg["role"] = m["role"]
        if m.get("tool_calls"):
            if not isinstance(m["tool_calls"], list):
                raise bad(f"messages[{i}].tool_calls: expected a list")
            calls = []
            for k, call in enumerate(m["tool_calls"]):
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    raise bad(f"messages[{i}].tool_calls[{k}]: expected {{\"function\": "
                              "{\"name\", \"arguments\"}}")
                call_id = f"call_{uuid.uuid4().hex[:12]}"
                open_calls.append(call_id)
                args = fn.get("arguments") or {}
                calls.append({"id": call_id, "type": "function", "function": {
                    "name": fn["name"],
                    "arguments": args if isinstance(args, str) else json.dumps(args)}})
            msg["tool_calls"] = calls
            if not content:
                msg["content"] = None
        if m["role"] == "tool":
            if not open_calls:
                raise bad(f"messages[{i}]: a tool message must follow an assistant "
                          "message with tool_calls")
            msg["tool_call_id"] = open_calls.pop(0)
        out.append(msg)
    return out


# -- reading a conversation ---------------------------------------------------------------


def conversation(raw: Any) -> tuple[dict[str, str], ...]:
    """`messages` as [{role, content}] with the text of each (image parts, tool calls and
    `content: null` allowed: a relay sends the messages as they came). ServeError 400 for
    an empty list, a message without a string role, or content that is neither text, a
    list of parts nor null."""
    if not isinstance(raw, list) or not raw:
        raise bad("messages: expected a non-empty list of {role, content} objects")
    out = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise bad(f"{where}: expected an object with a string 'role'")
        content = m.get("content")
        if content is None or isinstance(content, str):
            text = content or ""
        elif isinstance(content, list) and all(isinstance(p, dict) for p in content):
            text = "\n".join(p["text"] for p in content
                             if p.get("type") == "text" and isinstance(p.get("text"), str))
        else:
            raise bad(f"{where}.content: expected a string, a list of parts or null")
        out.append({"role": m["role"], "content": text})
    return tuple(out)


def include_usage_of(body: Mapping[str, Any]) -> bool:
    """`stream_options.include_usage` (400 when stream_options is not an object)."""
    so = body.get("stream_options")
    if so is None:
        return False
    if not isinstance(so, dict):
        raise bad("stream_options: expected an object such as {\"include_usage\": true}")
    return so.get("include_usage") is True


def is_unload(keep_alive: Any) -> bool:
    """Whether `keep_alive` asks Ollama to unload the model now (0, "0", "0s", "0m")."""
    if isinstance(keep_alive, int | float) and not isinstance(keep_alive, bool):
        return keep_alive == 0
    return isinstance(keep_alive, str) and keep_alive.strip() in ("0", "0s", "0m", "0h")
