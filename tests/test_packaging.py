"""A wheel built from the committed tree installs and runs (issue 18).

The wheel is built from `git archive HEAD` (a clean export: nothing untracked or ignored
can hide a missing package), checked to hold every package folder that has Python files,
installed without `-e` into a fresh virtual environment (its dependencies come from this
Python's site-packages), and run from outside the checkout.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if run(["git", "-C", str(ROOT), "rev-parse", "HEAD"]).returncode != 0:
        pytest.fail("the wheel test needs the git checkout (git archive HEAD)")
    src = tmp_path_factory.mktemp("export")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"],
                             capture_output=True, check=True, timeout=120).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(src, filter="data")
    out = tmp_path_factory.mktemp("dist")
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "-w", str(out), str(src)])
    assert built.returncode == 0, built.stderr[-2000:]
    (whl,) = out.glob("avengers_lab-*.whl")
    return whl


def test_wheel_holds_every_package_folder(wheel):
    folders = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "avengers_core").rglob("*.py")}
    with zipfile.ZipFile(wheel) as z:
        inside = {str(Path(n).parent) for n in z.namelist() if n.endswith(".py")}
    missing = sorted(folders - inside)
    assert not missing, f"package folders left out of the wheel: {missing}"
    assert "avengers_core/routing/routers" in inside


def test_wheel_installs_and_runs_outside_the_checkout(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    installed = run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                     "--no-index", str(wheel)])
    assert installed.returncode == 0, installed.stderr[-2000:]
    where = run([str(py), "-c", "import avengers_core; print(avengers_core.__file__)"],
                cwd=tmp_path)
    assert where.stdout.startswith(str(env_dir)), where.stdout + where.stderr
    helped = run([str(env_dir / "bin" / "avengers"), "--help"], cwd=tmp_path)
    assert helped.returncode == 0 and "evaluate" in helped.stdout
    table = tmp_path / "small.jsonl"
    rows = [{"query": f"{topic} question number {i}", "task": topic,
             "scores": {"a": float(topic == "math"), "b": float(topic == "code")}}
            for topic in ("math", "code") for i in range(20)]
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = run([str(env_dir / "bin" / "avengers"), "evaluate", str(table), "--k", "2",
                "--json"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    # two topics, each won by one model: the installed router beats any single model
    assert result["router"] > result["best_single"] and result["oracle"] == 1.0
