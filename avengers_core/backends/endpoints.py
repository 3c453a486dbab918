"""Endpoints: which server answers for which model, with replicas.

A user past one GPU serves each model on its own server (a vLLM or SGLang deployment can
itself span GPUs or hosts), and may run several replicas of one model. An endpoints file
(TOML or JSON) says, per model name, the backend, one or more base URLs, the engine's own
model name, an optional environment variable that holds the API key (never the key), and
whether the server honours `n`:

```toml
[models."qwen2.5-7b-instruct"]      # the name the routing table or --model-map uses
backend = "openai"                  # or "ollama"
urls = ["http://gpu0:8000/v1", "http://gpu1:8000/v1"]   # replicas: samples are spread
model = "Qwen/Qwen2.5-7B-Instruct"  # the engine's name (default: the key)
api_key_env = "VLLM_API_KEY"        # optional
n = true                            # optional: true / false; default: found out
```

:class:`Engines` puts it together with a default backend (`--backend/--host`) for every
model the file does not name. Vote and calibration talk only to an :class:`Engines`.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avengers_core import config
from avengers_core.backends import (
    BACKENDS,
    DEFAULT_TEMPERATURE,
    Backend,
    BackendUnavailable,
    StreamCall,
    Timeouts,
    get_backend,
)
from avengers_core.backends.model_names import find_listed
from avengers_core.backends.trust import check_key_env, note_key_use
from avengers_core.errors import InputError
from avengers_core.redact import refuse_userinfo, register_secret, strip_userinfo

KEYS = ("backend", "urls", "url", "model", "api_key_env", "n")


@dataclass(frozen=True)
class Endpoint:
    """One model's servers: `urls` are replicas of the same model (at least one)."""

    name: str
    backend: str
    urls: tuple[str, ...]
    model: str
    api_key_env: str | None = None
    n: bool | None = None


def load_endpoints(path: str | Path, allowed_keys: Collection[str] | None = None
                   ) -> dict[str, Endpoint]:
    """Read an endpoints file (`.toml` or `.json`): `{"models": {name: {...}}}`.

    Raises InputError naming the file, the model and what was expected; an API key must
    be named by `api_key_env`, never written in the file, and that variable must be one
    the user allowed (`allowed_keys`, default :func:`backends.trust.allowed_key_envs`).
    """
    path = Path(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: endpoints file not found") from None
    return parse_endpoints(text, str(path), toml=path.suffix.lower() == ".toml",
                           allowed_keys=allowed_keys)


def parse_endpoints(data: bytes, where: str, toml: bool,
                    allowed_keys: Collection[str] | None = None) -> dict[str, Endpoint]:
    """The endpoints in `data` (TOML if `toml`, else JSON); `where` names the source in
    errors (a file name, or an upload's). Raises InputError as :func:`load_endpoints`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{where}: not UTF-8 text (byte {e.start})") from None
    if toml:
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib

        try:
            parsed = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise InputError(f"{where}: not valid TOML ({e})") from None
    else:
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{where}: not valid JSON ({e.msg}, line {e.lineno})") from None
    models = parsed.get("models") if isinstance(parsed, dict) else None
    if not isinstance(models, dict) or not models:
        raise InputError(f"{where}: expected a 'models' table of model name -> endpoint")
    return {name: _endpoint(where, name, spec, allowed_keys) for name, spec in models.items()}


def _endpoint(source: str, name: str, spec: Any,
              allowed_keys: Collection[str] | None = None) -> Endpoint:
    where = f"{source}, model {name!r}"
    if not isinstance(spec, dict):
        raise InputError(f"{where}: expected a table with 'backend' and 'urls'")
    if "api_key" in spec:
        raise InputError(f"{where}: write the key in an environment variable and name it "
                         "with 'api_key_env'; keys are never read from files")
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise InputError(f"{where}: unknown key {unknown[0]!r} (expected {', '.join(KEYS)})")
    backend = spec.get("backend", "ollama")
    if backend not in BACKENDS:
        raise InputError(f"{where}: backend {backend!r} (expected one of {', '.join(BACKENDS)})")
    urls = spec.get("urls", spec.get("url"))
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u for u in urls):
        raise InputError(f"{where}: expected 'urls', a list of base URLs (one per replica)")
    for url in urls:
        refuse_userinfo(url, f"{where}, urls", "'api_key_env'")
    model = spec.get("model", name)
    key_env = spec.get("api_key_env")
    n = spec.get("n")
    if not isinstance(model, str) or not model:
        raise InputError(f"{where}: expected 'model' to be the engine's model name")
    if key_env is not None and not isinstance(key_env, str):
        raise InputError(f"{where}: expected 'api_key_env' to name an environment variable")
    if key_env is not None:
        check_key_env(key_env, where, allowed_keys)  # issue 20: the user allows key variables
    if n is not None and not isinstance(n, bool):
        raise InputError(f"{where}: expected 'n' to be true or false")
    return Endpoint(name, backend, tuple(dict.fromkeys(urls)), model, key_env, n)


def api_key(env_name: str | None, where: str = "--api-key-env") -> str | None:
    """The key in environment variable `env_name` (None: no key). Raises InputError when
    the variable is named but unset."""
    if not env_name:
        return None
    value = config.named_variable(env_name)
    if not value:
        raise InputError(f"{where}: environment variable {env_name} is not set")
    register_secret(value)  # scrubbed from every message from now on
    return value


@dataclass
class _Route:
    """A model's live replicas (backends) and the engine's name for it."""

    model: str
    replicas: list[Backend]
    cycle: Iterator[Backend] = field(init=False)

    def __post_init__(self) -> None:
        self.cycle = itertools.cycle(self.replicas)


class Engines:
    """Model name -> server(s): the endpoints file first, then the default backend.

    `list_models()` checks every server once (`/api/tags` or `/v1/models`) and keeps only
    the replicas that list their model; `notes` says what was dropped and why.
    `stream_call()` spreads calls over a model's replicas in turn.
    """

    def __init__(
        self,
        default: Backend | None,
        endpoints: Mapping[str, Endpoint] | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.default = default
        self.endpoints = dict(endpoints or {})
        self.timeouts = timeouts or (default.timeouts if default else Timeouts())
        self.notes: list[str] = []
        self._routes: dict[str, _Route] | None = None
        self._default_models: list[str] = []
        self._lock = threading.Lock()
        self._serial: dict[str, threading.Lock] = {}  # endpoints that take one request

    @classmethod
    def from_args(
        cls,
        backend: str = "ollama",
        host: str | None = None,
        api_key_env: str | None = None,
        endpoints_file: str | Path | None = None,
        timeouts: Timeouts | None = None,
        key_option: str = "--api-key-env",
    ) -> Engines:
        """The engines of the command line: `--backend/--host/--api-key-env` for the
        default, and `--endpoints` for the models it names. Raises InputError, also for a
        `host` with a user name or password (the key goes in the variable `key_option`
        names)."""
        refuse_userinfo(host, "--host", key_option)
        endpoints = load_endpoints(endpoints_file) if endpoints_file else {}
        key = api_key(api_key_env)
        try:
            default = get_backend(backend, host, timeouts, key)
        except ValueError as e:
            raise InputError(f"--backend: {e}") from None
        for ep in endpoints.values():
            api_key(ep.api_key_env, f"{endpoints_file}, model {ep.name!r}")
        return cls(default, endpoints, timeouts)

    @property
    def host(self) -> str:
        """Where the default backend lives (the endpoints file adds others)."""
        return self.default.host if self.default else "the endpoints file"

    def describe(self) -> str:
        """One line naming every server, for messages."""
        parts = [f"{self.default.name} at {self.default.host}"] if self.default else []
        parts += [f"{ep.name} at {', '.join(ep.urls)}" for ep in self.endpoints.values()]
        return "; ".join(parts)

    # -- availability ------------------------------------------------------------------
    def list_models(self) -> list[str]:
        """The model names that can be sampled now: the endpoints' names whose model is
        listed on at least one replica, then the default backend's models.

        Raises BackendUnavailable when no server answers at all.
        """
        with self._lock:
            if self._routes is None:
                self._routes = self._discover()
            names = list(self._routes) + [m for m in self._default_models
                                          if m not in self._routes]
        return names

    def _discover(self) -> dict[str, _Route]:
        listed: dict[tuple[str, str], list[str] | BackendUnavailable] = {}
        routes: dict[str, _Route] = {}
        for ep in self.endpoints.values():
            replicas = []
            for url in ep.urls:
                key = api_key(ep.api_key_env)
                # no key variable named: none is sent (not the backend's default variable)
                backend = get_backend(ep.backend, url, self.timeouts, key or "")
                if key and ep.backend == "openai":
                    note_key_use(str(ep.api_key_env), url, f"endpoints file, model {ep.name!r},")
                if ep.backend == "openai":
                    backend.supports_n = ep.n
                key = (ep.backend, backend.host)
                if key not in listed:
                    try:
                        listed[key] = backend.list_models()
                    except BackendUnavailable as e:
                        listed[key] = e
                found = listed[key]
                if isinstance(found, BackendUnavailable):
                    self.notes.append(f"{ep.name}: replica {backend.host} skipped ({found})")
                    continue
                tag = find_listed(ep.model, found)
                if tag is None:
                    shown = ", ".join(found[:5]) or "none"
                    self.notes.append(f"{ep.name}: {backend.host} does not list {ep.model!r} "
                                      f"(it lists {shown}); replica skipped")
                    continue
                replicas.append(backend)
                model = tag
            if replicas:
                routes[ep.name] = _Route(model, replicas)
        if self.default is not None:
            try:
                self._default_models = self.default.list_models()
            except BackendUnavailable as e:
                if not routes:  # say why the endpoints could not serve either
                    if self.notes:
                        e.args = (f"{e} (endpoints file: {'; '.join(self.notes)})",)
                    raise
                self.notes.append(str(e))
        elif not routes:
            raise BackendUnavailable("", "no endpoint in the endpoints file answers: "
                                     + "; ".join(self.notes))
        return routes

    # -- sampling ----------------------------------------------------------------------
    def _route(self, model: str) -> _Route | None:
        """`model`'s endpoint, discovering the servers first if nobody asked yet."""
        if not self.endpoints:
            return None
        if self._routes is None:
            self.list_models()
        assert self._routes is not None
        return self._routes.get(model)

    def _pick(self, model: str) -> tuple[Backend, str]:
        route = self._route(model)
        if route is None:
            if self.default is None:
                raise InputError(f"no endpoint serves {model!r}")
            return self.default, find_listed(model, self._default_models) or model
        with self._lock:
            return next(route.cycle), route.model

    def pick(self, model: str) -> tuple[Backend, str]:
        """The backend that serves `model` next (replicas in turn) and the engine's own
        name for it, for a relay (`avengers serve`). Raises InputError when none does."""
        return self._pick(model)

    def supports_n(self, model: str) -> bool:
        """Whether to ask `model` for several choices per request: the endpoint says so,
        or nothing said it does not (found out from the first reply)."""
        route = self._route(model)
        replicas = route.replicas if route else [self.default] if self.default else []
        return any(getattr(b, "supports_n", False) is not False for b in replicas)

    def n_ignored(self, endpoint: str) -> None:
        """A server at `endpoint` returned fewer choices than asked: ask it for one from
        now on."""
        for backend in self._backends():
            if strip_userinfo(backend.host) == endpoint and hasattr(backend, "supports_n"):
                backend.supports_n = False

    def interrupts(self, endpoint: str) -> bool:
        """The server at `endpoint` ends a stream when another request arrives: send it
        one request at a time from now on. True when this is news."""
        with self._lock:
            if endpoint in self._serial:
                return False
            self._serial[endpoint] = threading.Lock()
            return True

    def serial_gate(self, endpoint: str) -> threading.Lock | None:
        """The lock a request to `endpoint` must hold while it runs, for a server found to
        interrupt its streams (see :meth:`interrupts`); None for every other server."""
        with self._lock:
            return self._serial.get(endpoint)

    def _backends(self) -> Iterator[Backend]:
        if self.default is not None:
            yield self.default
        for route in (self._routes or {}).values():
            yield from route.replicas

    def stream_call(
        self,
        model: str,
        prompt: str,
        *,
        seed: int | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        n: int = 1,
        options: Mapping[str, Any] | None = None,
    ) -> StreamCall:
        """A streaming call to the next replica serving `model` (see Backend.stream_call)."""
        backend, engine_model = self._pick(model)
        return backend.stream_call(engine_model, prompt, seed=seed, temperature=temperature,
                                   n=n, options=options)

    def origin(self, model: str) -> str:
        """A stable name for where `model` is served (written beside calibration rows)."""
        ep = self.endpoints.get(model)
        if ep is not None:
            return ep.urls[0]
        return self.default.host if self.default else ""


def as_engines(client: Engines | Backend | str | None, timeouts: Timeouts | None = None
               ) -> Engines:
    """`client` as Engines: a Backend becomes the default of an Engines without endpoints,
    and a host string (or None) an Ollama backend there."""
    if isinstance(client, Engines):
        return client
    if not isinstance(client, Backend):
        client = get_backend("ollama", client, timeouts)
    elif timeouts is not None:
        client.timeouts = timeouts
    return Engines(client, timeouts=client.timeouts)
