"""The speed benchmark's own pieces: resampling, peak-memory reading, verdicts, report."""

from __future__ import annotations

import numpy as np

from bench.bench_speed import TARGETS, resample, reset_peak, section, status_kib, verdict
from bench.common import spread


def test_resample_rows_are_noisy_unit_copies_of_their_source():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    idx, out = resample(x, 1000, sigma=0.01, seed=0, chunk=300)
    assert out.shape == (1000, 384) and out.dtype == np.float32
    assert idx.min() >= 0 and idx.max() < 50
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    cos = np.sum(out * x[idx], axis=1)
    assert cos.min() > 0.9 and cos.max() < 0.9999  # close to the source row, never a copy
    idx2, out2 = resample(x, 1000, sigma=0.01, seed=0, chunk=1000)
    np.testing.assert_array_equal(idx, idx2)  # the chunk size does not change the draw
    assert not np.array_equal(resample(x, 1000, sigma=0.01, seed=1)[0], idx)


def test_peak_reset_forgets_an_earlier_allocation():
    assert reset_peak()
    before = status_kib("VmHWM")
    block = np.ones(100 * 2**20 // 8)  # 100 MiB, touched
    high = status_kib("VmHWM")
    del block
    assert high - before > 90 * 1024
    assert reset_peak()
    assert status_kib("VmHWM") < high - 50 * 1024


def test_verdict_says_met_or_by_how_much_it_missed():
    assert verdict(1.1, 1.2, "×") == "met (1.10× ≤ 1.2×)"
    assert verdict(1.5, 1.2, "×") == "missed by 0.30× (25% over 1.2×)"
    assert verdict(90.0, 60.0, " s", 1) == "missed by 30.0 s (50% over 60 s)"


def _results(fit_200k_s: float, ratio: float) -> dict:
    def fit(n: int, cfg: str, s: float, gb: float) -> dict:
        return {"n": n, "config": cfg, "resampled": n != 5989,
                "mean_cos_to_source": None if n == 5989 else 0.98, "shrinkage": [20.0],
                "peak_reset": True, "fit_s": spread([s * 0.9, s, s * 1.2]),
                "peak_gb": spread([gb, gb]), "increase_gb": spread([gb / 2, gb / 2]),
                "ru_maxrss_gb": [gb, gb]}

    return {
        "k": 64, "sigma": 0.01, "targets": TARGETS, "repeats": 2,
        "cache": {"n": 5989, "dim": 384, "bytes": 10_700_000, "shards": 12,
                  "bytes_per_query": 1790.0},
        "fit": [fit(5989, "default", 0.7, 0.3), fit(5989, "paper", 0.5, 0.3),
                fit(200_000, "default", fit_200k_s, 1.5), fit(200_000, "paper", 20.0, 2.5)],
        "cold": {"n": 1000, "mean_chars": 300.0, "load_s": spread([10.0, 11.0]),
                 "encode_s": spread([40.0, 41.0]), "qps": spread([25.0, 24.4])},
        "warm": {"n": 5989, "time_s": spread([0.05, 0.06]), "qps": spread([1.2e5, 1e5])},
        "route": {"n": 150, "k": 64, "top_k": 3, "encode_s": spread([0.010, 0.011]),
                  "route_s": spread([0.010 * ratio, 0.011 * ratio]),
                  "ratio": spread([ratio, ratio]), "extra_s": spread([0.001, 0.001])},
    }


def test_section_states_each_target_from_the_numbers():
    text = section(_results(fit_200k_s=90.0, ratio=1.05))
    assert text.startswith("## Speed and scale")
    assert "Target ≤ 1.2×: **met (1.050× ≤ 1.2×)**" in text
    assert "5,989 queries, default: under 2 s — **met (0.70 s ≤ 2 s)**" in text
    assert "200,000 queries, default: under 60 s — **missed by 30.0 s (50% over 60 s)**" in text
    assert "200,000 queries, paper: under 60 s — **met (20.0 s ≤ 60 s)**" in text
    assert "**missed by 0.50 GB (25% over 2 GB)**" in text  # the paper row's 2.5 GB peak
    assert "| 10.7 MB |" in text and "| 1,790 bytes |" in text
    worse = section(_results(fit_200k_s=10.0, ratio=1.5))
    assert "Target ≤ 1.2×: **missed by 0.300× (25% over 1.2×)**" in worse
