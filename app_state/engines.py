"""LLM engines for the Vote and Calibrate pages: backend, host, key, endpoints file; the
models they serve, and what to start when none answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from app_state.fmt import code, md_escape, slug

#: Ollama library tags for the demo table's models (for `ollama pull` hints).
PULL_TAGS = {
    "qwen2.5-7b-instruct": "qwen2.5:7b-instruct",
    "llama-3.1-8b-instruct": "llama3.1:8b",
    "gemma-2-9b-it": "gemma2:9b",
    "mistral-7b-instruct-v0.3": "mistral:7b-instruct-v0.3",
    "codegemma-7b": "codegemma:7b",
    "llama3-chatqa-1.5-8b": "llama3-chatqa:8b",
    "llama3-chatqa-1.5-70b": "llama3-chatqa:70b",
}
LARGE = {"llama3-chatqa-1.5-70b"}  # ~40 GB: never suggested as a first pull (issue 19)


def ollama_host() -> str:
    """The session's Ollama host (default: `OLLAMA_HOST`, else 127.0.0.1:11434)."""
    from avengers_core.backends.ollama import resolve_host

    st.session_state.setdefault("ollama_host", resolve_host())
    return st.session_state["ollama_host"]


def calibration_path(source: str, host: str) -> Path:
    """Default calibration table for a question set on a host: grades are never shared
    between hosts. Folder: `AVENGERS_CALIBRATION_DIR`, else `calibration/` in the cache."""
    from avengers_core.config import calibration_dir

    return calibration_dir() / f"{slug(source)}-{slug(host.split('://')[-1])}.jsonl"


def ollama_missing(host: str, wanted: list[str], running: bool = False) -> None:
    """Say exactly what to start (or pull) when Ollama cannot be used at `host`."""
    pulls = ([PULL_TAGS[m] for m in wanted if m in PULL_TAGS and m not in LARGE]
             or ["qwen2.5:7b-instruct"])
    if running:
        st.warning(f"Ollama at {code(host)} answers but has no model yet.")
        st.markdown("Pull a model, then press **Check again**:")
    else:
        st.warning(f"Ollama is not reachable at {code(host)}.")
        st.markdown("Start it with `ollama serve` and pull the models the router picks, "
                    "then press **Check again**:")
    lines = [] if running else ["ollama serve"]
    st.code("\n".join(lines + [f"ollama pull {tag}" for tag in pulls[:3]]), language="bash")
    st.caption("Ollama on another machine or port? Change the host above.")


def check_again(where: Any = None) -> None:
    """A *Check again* button: forget the cached model lists so the servers are asked anew."""
    if (where or st).button("Check again"):
        connect.clear()


BACKEND_LABELS = {"ollama": "Ollama", "openai": "OpenAI-compatible"}


@st.cache_resource(ttl=10, show_spinner="Asking the engines for their models…")
def connect(backend: str, host: str, key_env: str, endpoints: bytes | None,
            endpoints_name: str, key_envs: str = "") -> tuple[Any, list[str]]:
    """(Engines, the models they serve) for these settings; raises InputError (a bad
    endpoints file, an unset key variable, credentials in the host URL) or
    BackendUnavailable, neither cached. The endpoints file may name only the key variables
    the user allowed (issue 20): `key_env`, those in `key_envs` (comma-separated) and
    those in AVENGERS_KEY_ENVS."""
    from avengers_core.backends import get_backend
    from avengers_core.backends.endpoints import Engines, api_key, parse_endpoints
    from avengers_core.backends.trust import allowed_key_envs
    from avengers_core.redact import refuse_userinfo

    refuse_userinfo(host, "Host", "the API key variable field")
    key = api_key(key_env or None, "API key variable")
    parsed = {}
    if endpoints is not None:
        allowed = allowed_key_envs([key_env, *key_envs.replace(",", " ").split()])
        parsed = parse_endpoints(endpoints, endpoints_name,
                                 toml=endpoints_name.lower().endswith(".toml"),
                                 allowed_keys=allowed)
    eng = Engines(get_backend(backend, host, api_key=key), parsed)
    return eng, eng.list_models()


def session_engines() -> tuple[Any, list[str]]:
    """(Engines, their models) of the session's engine settings, last drawn on Vote or
    Calibrate (default: Ollama at the session's host), without drawing anything. Raises
    InputError or BackendUnavailable as :func:`connect`."""
    choice = st.session_state.get("engine_choice") or ("ollama", ollama_host(), "", None, "")
    return connect(*choice)


def kept(name: str, default: Any, options: list[Any] | None = None) -> dict[str, Any]:
    """Widget kwargs for key `name` whose value survives page switches (issue 19, item 3).

    Streamlit deletes a widget's state on a run that does not draw it, and a widget of the
    same key on another page starts afresh; so the value lives in a kept copy, written by
    the widget's `on_change` and put back before the widget is drawn. `options`: a kept
    value no longer among them (another engine's model) falls back to `default`."""
    copy = f"{name}@kept"
    st.session_state.setdefault(copy, default)
    if options is not None and st.session_state[copy] not in options:
        st.session_state[copy] = default
    st.session_state[name] = st.session_state[copy]

    def changed() -> None:
        st.session_state[copy] = st.session_state[name]

    return {"key": name, "on_change": changed}


def engine_settings(wanted: list[str] | None = None) -> tuple[Any, list[str]]:
    """Draw the engine settings (backend, host, API key variable, endpoints file) and
    return (Engines, the models they serve). When nothing can be used, say what to start
    and stop the page (issue 10: the same choices as the command line)."""
    from avengers_core.backends import BACKENDS, BackendUnavailable
    from avengers_core.backends.openai import resolve_base_url
    from avengers_core.errors import InputError
    from avengers_core.redact import scrub

    b_col, host_col, check_col = st.columns([1.5, 3, 1], vertical_alignment="bottom")
    backend = b_col.selectbox("Backend", BACKENDS, **kept("engine_backend", "ollama"),
                              format_func=BACKEND_LABELS.get,
                              help="Ollama's own API, or any OpenAI-compatible server: "
                                   "llama.cpp, vLLM, SGLang, LM Studio, Ollama's /v1.")
    if backend == "ollama":
        host = host_col.text_input("Ollama host", **kept("engine_ollama_host", ollama_host()))
        st.session_state["ollama_host"] = host
    else:
        host = host_col.text_input("Server URL", **kept("engine_openai_host",
                                                        resolve_base_url()),
                                   help="The base URL, e.g. http://127.0.0.1:8000/v1")
    check_again(check_col)
    with st.expander("API key and endpoints file"):
        key_env = st.text_input(
            "API key variable", **kept("engine_key_env", ""),
            help="The name of an environment variable of the app's process that holds the "
                 "key (sent as a Bearer token); never the key itself.").strip()
        up = st.file_uploader(
            "Endpoints file (TOML or JSON)", type=["toml", "json"], key="engine_endpoints",
            help="Per model: backend, urls (replicas), the engine's model name, api_key_env; "
                 "see docs/ENGINES.md. It overrides the backend and host for those models.")
        key_envs = st.text_input(
            "Key variables the file may use", **kept("engine_key_envs", ""),
            help="Names of environment variables whose keys the endpoints file may send "
                 "(comma-separated); a file someone else wrote can name no other. The API "
                 "key variable above is allowed too.").strip()
        if up is not None:  # an uploader cannot be refilled: keep the file's bytes
            st.session_state["engine_endpoints_file"] = (up.name, up.getvalue())
        elif st.session_state.get("engine_endpoints_file"):
            name = st.session_state["engine_endpoints_file"][0]
            st.caption(f"Using {code(name)}, uploaded earlier in this session.")
            if st.button("Forget the endpoints file"):
                st.session_state.pop("engine_endpoints_file")
    saved = st.session_state.get("engine_endpoints_file")
    choice = (backend, host, key_env, saved[1] if saved else None, saved[0] if saved else "",
              key_envs)
    st.session_state["engine_choice"] = choice  # Vote, Calibrate and the tour share it
    try:
        eng, models = connect(*choice)
    except InputError as e:
        st.error(md_escape(scrub(str(e))))
        st.stop()
    except BackendUnavailable as e:
        if backend == "ollama" and saved is None:
            ollama_missing(host, wanted or [])
        else:
            st.warning(md_escape(str(e)))
            st.caption("Start the server or change the settings above, then press "
                       "**Check again**.")
        st.stop()
    for note in eng.notes:
        st.caption(md_escape(scrub(note)))
    if not models:
        if backend == "ollama":
            ollama_missing(host, wanted or [], running=True)
        else:
            st.warning(f"{code(host)} answers but serves no model yet.")
        st.stop()
    check_col.caption(f"{len(models)} model(s)")
    return eng, models
