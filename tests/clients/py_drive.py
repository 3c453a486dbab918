"""Drives `avengers serve` through LangChain (`langchain-openai`, `langchain-ollama`) or
LiteLLM, for tests/clients/test_langchain.py and test_litellm.py. It runs in the clients'
own venv (`scripts/setup.sh --test`), so it imports nothing of the project:

    python py_drive.py '{"client": "langchain-openai", "url": "http://127.0.0.1:PORT",
                         "calls": [{"model": "avengers", "messages": [...], "stream": false}]}'

Clients: `langchain-openai` (ChatOpenAI), `langchain-ollama` (ChatOllama), `litellm-openai`
(`openai/NAME`), `litellm-ollama-chat` (`ollama_chat/NAME`, /api/chat) and `litellm-ollama`
(`ollama/NAME`, /api/generate). Each call may add `extra` (keyword arguments of the client's
call). Prints one JSON array, one result per call: {"ok": true, "text", "finish", "model",
"chunks", "avengers"} (`avengers` where the client keeps the reply's extra field, else null)
or {"ok": false, "error": {"name", "message", "status"}}.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def langchain(client: str, url: str, call: dict[str, Any]) -> dict[str, Any]:
    """One chat through ChatOpenAI or ChatOllama, whole (`invoke`) or streamed (`stream`)."""
    if client == "langchain-openai":
        from langchain_openai import ChatOpenAI

        chat = ChatOpenAI(model=call["model"], base_url=f"{url}/v1", api_key="-", max_retries=0,
                          timeout=60, **call.get("extra", {}))
    else:
        from langchain_ollama import ChatOllama

        chat = ChatOllama(model=call["model"], base_url=url, **call.get("extra", {}))
    if not call.get("stream"):
        msg = chat.invoke(call["messages"])
        meta = msg.response_metadata
        return {"text": msg.content, "chunks": 0, "model": meta.get("model_name")
                or meta.get("model"), "finish": meta.get("finish_reason")
                or meta.get("done_reason"), "avengers": meta.get("avengers")}
    text, chunks, meta = "", 0, {}
    for chunk in chat.stream(call["messages"]):
        chunks += 1
        text += chunk.content if isinstance(chunk.content, str) else ""
        meta.update({k: v for k, v in chunk.response_metadata.items() if v is not None})
    return {"text": text, "chunks": chunks, "model": meta.get("model_name") or meta.get("model"),
            "finish": meta.get("finish_reason") or meta.get("done_reason"),
            "avengers": meta.get("avengers")}


LITELLM_PREFIX = {"litellm-openai": "openai", "litellm-ollama-chat": "ollama_chat",
                  "litellm-ollama": "ollama"}


def litellm_call(client: str, url: str, call: dict[str, Any]) -> dict[str, Any]:
    """One `litellm.completion`, whole or streamed."""
    import litellm

    base = f"{url}/v1" if client == "litellm-openai" else url
    res = litellm.completion(model=f"{LITELLM_PREFIX[client]}/{call['model']}", api_base=base,
                             api_key="-", messages=call["messages"],
                             stream=bool(call.get("stream")), num_retries=0, timeout=60,
                             **call.get("extra", {}))
    if not call.get("stream"):
        choice = res.choices[0]
        extra = getattr(res, "model_extra", None) or {}
        return {"text": choice.message.content, "finish": choice.finish_reason,
                "model": res.model, "chunks": 0,
                "avengers": extra.get("avengers") or getattr(res, "avengers", None)}
    text, chunks, finish, model, avengers = "", 0, None, None, None
    for chunk in res:
        chunks += 1
        model = chunk.model or model
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        avengers = avengers or getattr(chunk, "avengers", None)
    return {"text": text, "finish": finish, "model": model, "chunks": chunks,
            "avengers": avengers}


def main() -> None:
    """Run the job in argv[1] and print the results (see the module docstring)."""
    job = json.loads(sys.argv[1])
    drive = langchain if job["client"].startswith("langchain") else litellm_call
    results = []
    for call in job["calls"]:
        try:
            results.append({"ok": True, **drive(job["client"], job["url"], call)})
        except Exception as e:  # the client's own error, reported to the test
            status = getattr(e, "status_code", None) or getattr(e, "status", None)
            results.append({"ok": False, "error": {"name": type(e).__name__,
                                                   "message": str(e)[:2000],
                                                   "status": status}})
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
