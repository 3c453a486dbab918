"""Device choice for local models and K-means: CUDA, then Apple MPS, then the CPU.

Issue 13: a workstation's GPU embeds MiniLM ~20× faster than 16 CPU cores. The choice is
overridden by `--device` (commands that embed), then by the `AVENGERS_DEVICE` environment
variable. torch is imported only when a choice has to be detected, so a run whose vectors
are all cached never pays for it.
"""

from __future__ import annotations

import re

from avengers_core import config
from avengers_core.errors import InputError

ENV = config.DEVICE_VARIABLE
CHOICES = ("auto", "cuda", "mps", "cpu")  # plus "cuda:N" for one GPU of several
_VALID = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device(name: str, where: str = "--device") -> str:
    """`name` lower-cased if it is a device name ("auto", "cpu", "cuda", "cuda:N", "mps");
    raises InputError naming `where` otherwise."""
    value = name.strip().lower()
    if not _VALID.match(value):
        raise InputError(f"{where}: unknown device {name!r} (expected auto, cuda, cuda:N, mps "
                         "or cpu)")
    return value


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _mps() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def choose_device(requested: str | None = None) -> str:
    """The torch device to use: `requested` unless None or "auto", else `$AVENGERS_DEVICE`
    unless unset or "auto", else the first present of "cuda", "mps", "cpu".

    Raises InputError for an unknown name, or when CUDA or MPS is asked for but absent
    (a silent fallback would hide a broken driver behind a 20× slower run)."""
    where = "--device"
    if requested is None or requested.strip().lower() == "auto":
        requested, where = config.device_setting(), f"${ENV}"
    device = check_device(requested, where)
    if device == "auto":
        if _cuda():
            return "cuda"
        return "mps" if _mps() else "cpu"
    if device.startswith("cuda") and not _cuda():
        raise InputError(f"{where}: {device} asked for, but torch finds no CUDA device "
                         "(a CPU-only torch build, or no driver); use --device cpu")
    if device == "mps" and not _mps():
        raise InputError(f"{where}: mps asked for, but torch finds no Apple MPS device")
    return device


def is_gpu(device: str) -> bool:
    """True for a CUDA or MPS device name."""
    return device.startswith("cuda") or device == "mps"


def add_device_option(parser) -> None:
    """`--device` on a command that embeds (fit, evaluate, route, vote, serve)."""
    parser.add_argument("--device", metavar="DEVICE",
                        help="where the embedder and large K-means run: auto (default: "
                             f"${ENV}, else CUDA, then Apple MPS, then CPU), cuda, cuda:N, "
                             "mps or cpu")


def use_device(device: str | None) -> None:
    """Make `device` (a `--device` value; None: leave as is) this process's default, as
    `$AVENGERS_DEVICE`, so every embedder and K-means of the command follows it. Raises
    InputError for an unknown name or an absent CUDA/MPS device."""
    if device:
        config.set_device(choose_device(check_device(device)))
