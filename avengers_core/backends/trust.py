"""What a file written by someone else may make this program do (issue 20).

Two files travel between people: profiles (a folder or zip from `avengers fit` or the
app) and endpoints files. Neither may decide where the user's queries or keys go.

- **Profiles are data.** A profile names the embedder it was fitted with. When that is a
  server (`openai:<model>@<URL>`, `openai:<endpoint name>`, `ollama:<model>`), using it
  sends every query there; so a command refuses it, in one line naming the server, unless
  the user names the embedder themselves (`--embedder`) or says
  `--trust-profile-embedder` (or sets `AVENGERS_TRUST_PROFILE_EMBEDDER=1`). Local
  embedders (MiniLM, sentence-transformers) need nothing. (An embedding server gets a key
  only from a variable the user named: the explicit `openai:<model>@<URL>` form sends
  none; an endpoints file's entry its `api_key_env`, under the rule below.)
- **Endpoints files name key variables, and the user allows them.** `api_key_env` may only
  name a variable the user allowed: `--allow-key-env NAME` (repeatable), the variable
  named by `--api-key-env`/`--upstream-key-env` on the same command, or the environment
  variable `AVENGERS_KEY_ENVS` (names separated by commas); in the app, the *API key
  variable* field and the *Key variables the file may use* field. Otherwise a file could
  send, say, `AWS_SECRET_ACCESS_KEY` as a Bearer token to a host of its choosing. Each
  allowed key is announced once, at first use, in one log line naming the variable and
  the host (:func:`note_key_use`).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from avengers_core import config
from avengers_core.errors import InputError
from avengers_core.redact import strip_userinfo

KEY_ENVS_VAR = "AVENGERS_KEY_ENVS"
"""Environment variable: key variables any endpoints file may name (comma-separated)."""
TRUST_FLAG = "--trust-profile-embedder"
TRUST_ENV = "AVENGERS_TRUST_PROFILE_EMBEDDER"
"""Environment variable: `1` does what TRUST_FLAG does, for every command (the user's
choice for their own profiles; the test suites set it, see tests/conftest.py)."""

log = logging.getLogger("avengers_core.backends.trust")
_lock = threading.Lock()
_allowed: set[str] = set()
_announced: set[tuple[str, str]] = set()


# -- profiles -------------------------------------------------------------------------------
def embedder_server(embedder_id: str, ollama_host: str | None = None,
                    endpoints: Mapping[str, Any] | None = None) -> str | None:
    """Where an embedder named `embedder_id` would send texts: a URL (or a description of
    the endpoint), or None for a local model. `ollama_host`: the Ollama host it would use
    (default: `OLLAMA_HOST` or the local default); `endpoints`: the endpoints that resolve
    an `openai:<name>` embedder."""
    if embedder_id.startswith("ollama:"):
        if ollama_host is None:
            from avengers_core.backends.ollama import resolve_host

            ollama_host = resolve_host()
        return strip_userinfo(ollama_host)
    if embedder_id.startswith("openai:"):
        spec = embedder_id.split(":", 1)[1]
        if "@" in spec:
            return strip_userinfo(spec.rsplit("@", 1)[1])
        ep = (endpoints or {}).get(spec)
        urls = getattr(ep, "urls", None)
        return ", ".join(strip_userinfo(u) for u in urls) if urls else \
            f"endpoint {spec!r} of the endpoints file"
    return None


def profile_embedder_name(profile_id: str, source: Any, *, named: str | None = None,
                          trusted: bool = False, ollama_host: str | None = None,
                          endpoints: Mapping[str, Any] | None = None) -> str:
    """The embedder to use with a profile fitted with `profile_id`, loaded from `source`:
    `named` when the user named one (`--embedder`), else the profile's own when it is local
    or `trusted` (the flag, or TRUST_ENV set to 1). Raises InputError, one line naming the
    server, for a profile whose embedder is a server the user neither named nor trusted."""
    if named:
        return named
    url = embedder_server(profile_id, ollama_host, endpoints)
    if url is None or trusted or config.trust_profile_embedder():
        return profile_id
    raise InputError(f"{source}: the profile's embedder {profile_id!r} would send every query "
                     f"to {url}; a profile never chooses a server on its own: name the "
                     f"embedder yourself with --embedder {profile_id} (or another of the same "
                     f"dimension), or pass {TRUST_FLAG}")


# -- key variables of endpoints files ---------------------------------------------------------
def allow_key_envs(names: Iterable[str | None]) -> None:
    """Allow endpoints files read by this process to name these key variables (the CLI
    calls this with `--allow-key-env` and the engine key option)."""
    with _lock:
        _allowed.update(n.strip() for n in names if n and n.strip())


def allowed_key_envs(extra: Iterable[str | None] = ()) -> frozenset[str]:
    """The key variables an endpoints file may name: those allowed with
    :func:`allow_key_envs`, those in `AVENGERS_KEY_ENVS`, and `extra`."""
    env = re.split(r"[,\s]+", config.allowed_key_variables())
    with _lock:
        names = set(_allowed)
    return frozenset(n for n in [*names, *env, *extra] if n)


def check_key_env(name: str, where: str, allowed: Collection[str] | None = None) -> None:
    """Raise InputError unless `name` is an allowed key variable (`allowed`, default
    :func:`allowed_key_envs`); `where` names the file and model."""
    permitted = allowed_key_envs() if allowed is None else allowed
    if name not in permitted:
        raise InputError(f"{where}: api_key_env {name!r} is not a key variable you allowed "
                         f"(an endpoints file may send only those); allow it with "
                         f"--allow-key-env {name} or {KEY_ENVS_VAR}={name}")


def note_key_use(name: str, url: str, where: str = "endpoints file") -> None:
    """Say once per variable and host, in one log line, that a key is sent there."""
    url = strip_userinfo(url)
    with _lock:
        if (name, url) in _announced:
            return
        _announced.add((name, url))
    log.warning("note: %s sends the key in $%s to %s", where, name, url)


# -- command-line options -----------------------------------------------------------------------
def add_profile_embedder_options(s: Any, embedder: bool = True) -> None:
    """`--embedder` (when `embedder`) and `--trust-profile-embedder`, for the commands that
    embed queries with a saved profile (route, vote, serve)."""
    if embedder:
        s.add_argument("--embedder", metavar="NAME",
                       help="embed queries with this embedder instead of the profile's own "
                            "(needed, or --trust-profile-embedder, when the profile names a "
                            "server)")
    s.add_argument(TRUST_FLAG, action="store_true",
                   help="use the server the profile names as its embedder (a profile from "
                        "someone else could send your queries anywhere)")


def add_key_env_option(s: Any) -> None:
    """`--allow-key-env NAME` (repeatable): key variables an endpoints file may name."""
    s.add_argument("--allow-key-env", metavar="NAME", action="append",
                   help=f"let the endpoints file send the key in this variable (repeatable; "
                        f"or set {KEY_ENVS_VAR})")
