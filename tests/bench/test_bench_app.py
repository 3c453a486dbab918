"""The app benchmark's cheap parts: resampled vectors, leftover map workers, its section."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from bench import bench_app
from bench.common import spread


def test_resample_draws_noisy_unit_copies_of_the_rows():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = bench_app.resample(x, 500, sigma=0.01, seed=3)
    assert y.shape == (500, 16) and y.dtype == np.float32
    assert np.allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    nearest = (y @ x.T).max(axis=1)  # each row stays close to the row it was drawn from
    assert nearest.min() > 0.99 and not np.isclose(nearest, 1.0, atol=1e-6).all()
    assert np.array_equal(y, bench_app.resample(x, 500, sigma=0.01, seed=3))


def test_stop_map_workers_ends_a_running_worker(tmp_path):
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        maps = tmp_path / "maps"
        maps.mkdir()
        (maps / "k.umap.status.json").write_text(json.dumps({"state": "running",
                                                            "pid": worker.pid}))
        (maps / "done.umap.status.json").write_text(json.dumps({"state": "done", "pid": 1}))
        bench_app.stop_map_workers(tmp_path)
        assert worker.wait(20) != 0  # ended by a signal, not by its own exit
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_section_reports_every_figure_with_its_spread():
    def s(*v: float) -> dict:
        return spread(list(v))

    results = {
        "n_demo": 5989, "sigma": 0.01,
        "umap": {"demo table": {"n": 5989, "first": s(91.5, 95.25), "repeated": s(7.5, 8.5),
                                "first_cpu": s(80.0, 84.0), "repeated_cpu": s(7.0, 8.0)},
                 "50k resampled": {"n": 50000, "first": s(180.0), "repeated": s(120.0),
                                   "first_cpu": s(170.0), "repeated_cpu": s(110.0)}},
        "app": {"server_ready": s(3.0, 4.0), "first_page": s(6.0, 7.0),
                "fresh_pca_map": s(9.0, 11.0), "fresh_umap_map": s(100.0, 110.0),
                "fresh_umap_file": s(97.0, 104.0), "fresh_umap_worker": s(90.0, 93.0),
                "warm_umap_map": s(8.0, 9.0),
                "page_switch": s(0.5, 0.75, 1.5),
                "page_switch_by_page": {p: s(0.5, 1.0) for p in bench_app.PAGES},
                "first_visit": {p: 12.5 for p in bench_app.PAGES[1:]}},
    }
    text = bench_app.section(results)
    assert text.startswith("## ")
    for figure in ("93.38 s (91.50–95.25, n=2)", "8.00 s (7.50–8.50, n=2)",
                   "180.00 s (180.00–180.00, n=1)", "105.00 s (100.00–110.00, n=2)",
                   "0.75 s (0.50–1.50, n=3)", "10.00 s (9.00–11.00, n=2)",
                   "91.50 s (90.00–93.00, n=2)"):
        assert figure in text
    assert "Clusters 12.5 s; Leaderboard 12.5 s" in text
    assert "CPU time 82.0 s" in text and "CPU time 7.5 s" in text
    assert "50,000 demo vectors drawn with replacement" in text and "σ = 0.01" in text
    del results["app"]["fresh_umap_map"]  # a quick run: no UMAP in the app
    assert "UMAP map, fresh start" not in bench_app.section(results)
