"""The background map writer publishes its map last (issue 22: a test raced it).

Readers take the map file's appearance as "done" (`MapJob.coords`, `MapJob.status`), so
by the time it appears every other effect of the job must have happened: the input
vectors are deleted before it, and nothing is left to do after it but the status record.
"""

import numpy as np

from avengers_core.present import maps as project


def test_input_is_gone_before_the_map_appears(tmp_path, monkeypatch):
    X = np.random.default_rng(0).normal(size=(30, 6)).astype(np.float32)
    job = project.map_job([f"q{i}" for i in range(len(X))], "e", "pca", folder=tmp_path)
    job.folder.mkdir(parents=True, exist_ok=True)
    np.save(job.vectors_path, X, allow_pickle=False)
    seen: list[tuple[str, bool, str]] = []
    write = project.atomic_write_bytes

    def watching(path, data):
        if str(path) == str(job.coords_path):  # the moment readers can see "done"
            seen.append(("map", job.vectors_path.exists(), job.status()["state"]))
        write(path, data)

    monkeypatch.setattr(project, "atomic_write_bytes", watching)
    project.main([str(job.vectors_path), str(job.coords_path), "--method", "pca"])
    assert seen == [("map", False, "missing")]  # input gone; nothing claimed done before it
    assert job.status()["state"] == "done" and job.coords().shape == (30, 2)
    assert not job.vectors_path.exists()
