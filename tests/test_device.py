"""Device choice: --device > $AVENGERS_DEVICE > CUDA > MPS > CPU (issue 13), on the CPU
with torch's detection monkeypatched, plus GPU runs that skip only without a GPU."""

import numpy as np
import pytest
import torch

from avengers_core import device as dev
from avengers_core.cli.commands import build_parser, main
from avengers_core.embed.cache import embed_texts
from avengers_core.embed.load import get_embedder
from avengers_core.embed.local import SentenceTransformerEmbedder
from avengers_core.errors import InputError

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _present(monkeypatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize("cuda,mps,want", [(True, True, "cuda"), (False, True, "mps"),
                                           (False, False, "cpu"), (True, False, "cuda")])
def test_fallback_order(monkeypatch, cuda, mps, want):
    monkeypatch.delenv(dev.ENV, raising=False)
    _present(monkeypatch, cuda, mps)
    assert dev.choose_device() == want == dev.choose_device("auto")


def test_flag_beats_environment_beats_detection(monkeypatch):
    _present(monkeypatch, True, False)
    monkeypatch.setenv(dev.ENV, "cpu")
    assert dev.choose_device() == "cpu"  # the variable overrides the GPU found
    assert dev.choose_device("cuda:1") == "cuda:1"  # the flag overrides the variable
    assert dev.choose_device("CUDA") == "cuda"
    monkeypatch.setenv(dev.ENV, "auto")
    assert dev.choose_device() == "cuda"


def test_absent_or_unknown_device_is_one_clear_line(monkeypatch):
    _present(monkeypatch, False, False)
    monkeypatch.delenv(dev.ENV, raising=False)
    with pytest.raises(InputError, match="--device: cuda asked for, but torch finds no CUDA"):
        dev.choose_device("cuda")
    with pytest.raises(InputError, match="--device: mps asked for"):
        dev.choose_device("mps")
    with pytest.raises(InputError, match=r"--device: unknown device 'gpu' \(expected auto"):
        dev.choose_device("gpu")
    monkeypatch.setenv(dev.ENV, "tpu")
    with pytest.raises(InputError, match=r"\$AVENGERS_DEVICE: unknown device 'tpu'"):
        dev.choose_device()


def test_embedder_device_follows_the_choice_and_keeps_the_cache_key(monkeypatch):
    _present(monkeypatch, True, False)
    monkeypatch.delenv(dev.ENV, raising=False)
    gpu, cpu = get_embedder("minilm"), get_embedder("minilm", device="cpu")
    assert gpu.device == "cuda" and cpu.device == "cpu"  # chosen without loading the model
    assert gpu._loaded is None and cpu._loaded is None
    assert gpu.id == cpu.id == "st:all-MiniLM-L6-v2"  # one cache for every device
    assert gpu.chunk > cpu.chunk  # bigger chunks between cache writes on a GPU


@pytest.mark.parametrize("command", [
    ["fit", "t.jsonl", "--out", "o"], ["evaluate", "t.jsonl"], ["route", "p", "q"],
    ["vote", "p", "q"], ["serve", "p"]])
def test_commands_that_embed_take_device(command):
    args = build_parser().parse_args([*command, "--device", "cpu"])
    assert args.device == "cpu"


def test_cli_device_flag_sets_the_process_default(monkeypatch, capsys):
    _present(monkeypatch, False, False)
    monkeypatch.delenv(dev.ENV, raising=False)
    assert main(["route", "no-such-profile", "q", "--device", "cuda"]) == 2
    assert "--device: cuda asked for" in capsys.readouterr().err
    monkeypatch.setenv(dev.ENV, "auto")
    main(["route", "no-such-profile", "q", "--device", "cpu"])
    import os

    assert os.environ[dev.ENV] == "cpu"


@CUDA
def test_gpu_fp16_vectors_match_cpu_within_cosine_tolerance(tmp_path, monkeypatch):
    monkeypatch.setenv("AVENGERS_CACHE_DIR", str(tmp_path))
    texts = [f"How many apples does person {i} have left after giving {i} away?"
             for i in range(300)]
    cpu = SentenceTransformerEmbedder(device="cpu").encode(texts)
    gpu_emb = SentenceTransformerEmbedder(device="cuda")
    gpu = embed_texts(texts, gpu_emb)  # chunked, fp16, cache written in the background
    assert next(gpu_emb._model.parameters()).dtype == torch.float16
    assert gpu.dtype == np.float32 and gpu.shape == cpu.shape
    assert float(np.max(1 - np.sum(cpu * gpu, axis=1))) < 1e-3
    again = embed_texts(texts, SentenceTransformerEmbedder(device="cpu"))
    np.testing.assert_array_equal(again, gpu)  # the GPU's vectors serve the CPU embedder
