"""The `avengers` command line: contract names, JSON keys, exit codes, fast start."""

import json
import subprocess
import sys

import pytest

from avengers_core.cli import main


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "avengers_core.cli", *args],
        capture_output=True, text=True, env=env, timeout=300,
    )


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys; from avengers_core.cli.commands import build_parser; build_parser(); "
        "heavy = [m for m in ('torch', 'sentence_transformers', 'sklearn', 'umap', 'plotly', "
        "'pandas', 'ollama', 'streamlit') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
    help_ = run("--help")
    assert help_.returncode == 0
    for cmd in ("data", "fit", "route", "evaluate", "vote", "calibrate"):
        assert cmd in help_.stdout


def test_bad_table_is_exit_2_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a", "scores": {"m": 7}}\n')
    assert main(["fit", str(bad), "--out", str(tmp_path / "p"), "--k", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "line 1" in err[0]


def test_missing_profile_is_exit_2(tmp_path, capsys):
    assert main(["route", str(tmp_path), "hello"]) == 2
    assert "profile.json: missing" in capsys.readouterr().err


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A profile fitted by the CLI on a small real-text table (real MiniLM)."""
    tmp = tmp_path_factory.mktemp("cli")
    rows = []
    for i in range(30):
        rows.append({"query": f"What is {i} plus {i + 3}? Add the numbers.", "task": "math",
                     "scores": {"mathy": 1, "wordy": 0}})
        rows.append({"query": f"Translate the word number {i} into French, please.",
                     "task": "lang", "scores": {"mathy": 0, "wordy": 1}})
    table = tmp / "t.jsonl"
    table.write_text("\n".join(json.dumps(r) for r in rows))
    out = run("fit", str(table), "--out", str(tmp / "prof"), "--k", "2")
    assert out.returncode == 0, out.stderr
    assert "saved to" in out.stdout
    return tmp


def test_fit_then_route_json(fitted):
    out = run("route", str(fitted / "prof"), "What is 5 plus 9?", "--json", "--top-k", "2")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert {"cluster", "clusters", "models", "scores"} <= set(res)
    assert res["models"] == ["mathy"]
    assert len(res["clusters"]) == 2 and {"id", "p"} <= set(res["clusters"][0])
    assert res["scores"]["mathy"] > res["scores"]["wordy"]
    lang = json.loads(run("route", str(fitted / "prof"), "Translate 'cat' into French",
                          "--json").stdout)
    assert lang["models"] == ["wordy"]


def test_route_text_names_the_cluster_by_its_label(fitted):
    from avengers_core.routing.profile import saved_labels

    names = saved_labels(fitted / "prof")
    assert names is not None and len(names) == 2 and all(names)
    out = run("route", str(fitted / "prof"), "What is 5 plus 9?")
    assert out.returncode == 0, out.stderr
    res = json.loads(run("route", str(fitted / "prof"), "What is 5 plus 9?", "--json").stdout)
    label = names[res["cluster"]]
    why = next(line for line in out.stdout.splitlines() if line.startswith("why:"))
    assert f"“{label}”" in why  # as the app's reason names it
    assert any(line.strip().startswith(f"cluster {res['cluster']:>3}") and line.endswith(label)
               for line in out.stdout.splitlines())


def test_evaluate_json_keys(fitted):
    out = run("evaluate", str(fitted / "t.jsonl"), "--k", "2", "--json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    for key in ("router", "paper", "best_single", "oracle", "random", "knn"):
        assert isinstance(res[key], float)
    assert res["n_train"] + res["n_test"] == 60
    assert set(res["per_task"]) == {"math", "lang"}
    assert res["router"] == pytest.approx(1.0)


def test_k_larger_than_table(fitted):
    out = run("fit", str(fitted / "t.jsonl"), "--out", str(fitted / "p2"), "--k", "100")
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: ") and "K = 100" in out.stderr


def test_data_verifies_the_demo_files():
    from avengers_core.data.datasets import data_dir

    out = run("data", "--dir", str(data_dir()))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 9 and all(line.startswith("ok") for line in lines)


@pytest.mark.parametrize("args,expect", [
    (["fit", "llmrouter", "--out", "x", "--k", "0"], "--k must be at least 1"),
    (["evaluate", "llmrouter", "--test-size", "1.5"], "--test-size must be between 0 and 1"),
    (["fit", "llmrouter"], "the following arguments are required: --out"),
    (["route", "x", "q", "--top-k", "many"], "invalid int value"),
    (["fit", "llmruoter", "--out", "x"], "llmruoter: no such file or demo table (did you mean "
                                         "llmrouter?)"),
    (["fit", "nothing-like-it", "--out", "x"], "(demo tables: llmrouter)"),
    (["fit", "llmrouter", "--out", "x", "--clusters", "8"],
     "avengers fit: unknown flag --clusters (did you mean --k?)"),
    (["evaluate", "llmrouter", "--n-clusters=8"], "avengers evaluate: unknown flag "
                                                  "--n-clusters=8 (did you mean --k?)"),
    (["route", "x", "q", "--jsn"], "avengers route: unknown flag --jsn (did you mean --json?)"),
    (["fit", "llmrouter", "--out", "x", "stray"], "avengers fit: unexpected argument 'stray'"),
])
def test_bad_options_fail_fast_in_one_line(args, expect):
    out = run(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0]


def test_evaluate_sweeps(fitted):
    out = run("evaluate", str(fitted / "t.jsonl"), "--k", "2", "--sweeps", "--json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert [r["k"] for r in res["sweep_k"]] == [8, 16, 32]
    assert [r["n"] for r in res["sweep_models"]] == [1, 2]
    assert res["sweep_models"][1]["router"] >= res["sweep_models"][0]["router"]


def test_os_error_is_one_line_even_for_a_file_name_with_a_line_break(monkeypatch, capsys):
    def denied(path):
        raise PermissionError(13, "Permission denied", "odd\nname")

    monkeypatch.setattr("avengers_core.routing.profile.load_profile", denied)
    assert main(["route", "odd\nname", "hello"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["error: odd name: Permission denied"]
