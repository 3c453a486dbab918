"""Profiles: save as JSON + .npz, load with checks, never unpickle."""

import json
import zipfile

import numpy as np
import pytest

from avengers_core.errors import InputError
from avengers_core.routing.profile import load_profile, save_profile
from avengers_core.routing.routers.avengers import AvengersRouter
from avengers_core.routing.routers.base import RouterConfig


@pytest.fixture
def saved(toy, tmp_path):
    table, x = toy
    r = AvengersRouter.fit(table, x, RouterConfig(k=4, top_k=2), embedder_id="test:toy")
    return r, save_profile(r, tmp_path / "prof"), x


def test_round_trip_routes_identically(saved):
    r, folder, x = saved
    back = load_profile(folder, embedder_id="test:toy")
    np.testing.assert_allclose(back.predict(x), r.predict(x))
    assert back.config == r.config
    assert back.cluster_tasks == r.cluster_tasks
    doc = json.loads((folder / "profile.json").read_text())
    assert doc["k"] == 4 and doc["embedder"] == {"id": "test:toy", "dim": 8}
    assert len(doc["clusters"]) == 4 and "mean" in doc["clusters"][0]


def test_embedder_mismatch(saved):
    _, folder, _ = saved
    with pytest.raises(InputError, match="fitted with embedder 'test:toy'"):
        load_profile(folder, embedder_id="st:other")


def test_version_and_shape_checks(saved):
    _, folder, _ = saved
    pj = folder / "profile.json"
    doc = json.loads(pj.read_text())
    pj.write_text(json.dumps({**doc, "version": 99}))
    with pytest.raises(InputError, match="version 99"):
        load_profile(folder)
    pj.write_text(json.dumps({**doc, "k": 5}))
    with pytest.raises(InputError, match="shape"):
        load_profile(folder)
    pj.write_text("{oops")
    with pytest.raises(InputError, match="not valid JSON"):
        load_profile(folder)


def test_pickled_npz_is_refused(saved):
    _, folder, _ = saved
    np.savez(folder / "centroids.npz", centroids=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(InputError, match="centroids.npz: holds a pickled object array"):
        load_profile(folder)


def test_missing_folder(tmp_path):
    with pytest.raises(InputError, match="profile.json: missing"):
        load_profile(tmp_path)


def test_zip_at_its_root_and_the_profile_json_path_load(saved, tmp_path):
    r, folder, x = saved
    z = tmp_path / "p.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for name in ("profile.json", "centroids.npz"):
            zf.write(folder / name, name)
    np.testing.assert_allclose(load_profile(z).predict(x), r.predict(x))
    np.testing.assert_allclose(load_profile(folder / "profile.json").predict(x), r.predict(x))


def test_zip_members_from_two_folders_are_refused(saved, tmp_path):
    _, folder, _ = saved
    z = tmp_path / "p.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(folder / "profile.json", "a/profile.json")
        zf.write(folder / "centroids.npz", "b/centroids.npz")
    with pytest.raises(InputError, match="'b/centroids.npz': members in different folders"):
        load_profile(z)


def test_centroids_from_another_fit_are_refused(saved, toy, tmp_path):
    _, folder, _ = saved
    table, x = toy
    other = AvengersRouter.fit(table, x, RouterConfig(k=4, seed=1), embedder_id="test:toy")
    save_profile(other, tmp_path / "other")
    (folder / "centroids.npz").write_bytes((tmp_path / "other" / "centroids.npz").read_bytes())
    with pytest.raises(InputError, match="centroids.npz: does not match profile.json"):
        load_profile(folder)


def test_inconsistent_k_and_repeated_models_are_named(saved):
    _, folder, _ = saved
    pj = folder / "profile.json"
    doc = json.loads(pj.read_text())
    pj.write_text(json.dumps({**doc, "parameters": {**doc["parameters"], "k": 3}}))
    with pytest.raises(InputError, match="parameters say K = 3 but k is 4"):
        load_profile(folder)
    pj.write_text(json.dumps({**doc, "models": [doc["models"][0]] * len(doc["models"])}))
    with pytest.raises(InputError, match="a model is listed twice"):
        load_profile(folder)
