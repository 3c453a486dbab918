"""`avengers serve`: the router as one more model for any Ollama or OpenAI client (issue 12).

:func:`~avengers_core.serve.app.build_app` makes the ASGI app from a
:class:`~avengers_core.serve.service.Service` (router, embedder, engines). Modules: `service`
(route, vote, relay), `requests` (parsing and checks), `replies` (admission, streamed or
whole replies, headers), `streams` (thread bridge, queue, disconnect-aware streaming),
`openai_api` and `ollama_api` (the two protocols), `app` (key check, routes); issue 20:
`guard` (Host and Origin checks, CORS, body timeout), `limits` (header and idle timeouts,
connection cap), `payload` (JSON depth and text checks); issue 21: `passthrough` (faithful
relay to an engine, reply converters), `fields` (field tables across protocols and what the
vote honours), `embeddings` (`/api/embed`, `/v1/embeddings`).
"""
