"""Write the core part of BENCHMARKS.md from bench/core.json (keeps the voting section).

    python bench/report.py
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = {
    "router": "router (default: top-3 clusters, β = 6, shrinkage by CV)",
    "paper": "paper-exact (nearest cluster, raw accuracy)",
    "best_single": "best single model (chosen on train)",
    "knn": "kNN router (20 nearest train queries)",
    "random": "random model",
    "oracle": "oracle (best model per query)",
}
VOTE_HEADING = "## Voting: 10 samples, concurrent vs one after another"


def core_section(d: dict) -> list[str]:
    h, ds = d["heldout"], d["dominant_slice"]
    out = [
        "# Benchmarks\n",
        "All numbers come from this project's own scripts, on the demo table (LLMRouter: 5,989",
        "distinct queries after merging 119 repeats, 9 models, 14 tasks) with all-MiniLM-L6-v2.\n",
        f"Machine: {d['machine']} (the workplace's 2-core, 24 GiB VM, CPU only), 2026-11-25.\n",
        "## Core: embedding, fitting, held-out routing\n",
        "Command (repository root): `AVENGERS_DATA_DIR=../shared/data python bench/bench_core.py"
        " > bench/core.json && python bench/report.py`\n(raw output: "
        "[bench/core.json](bench/core.json)).\n",
        "| what | time |", "|---|---:|",
        f"| embed the demo table, cold (fresh process, empty cache, model load included) "
        f"| {d['embed_cold_s']:.0f} s ({d['n_queries'] / d['embed_cold_s']:.0f} queries/s) |",
        f"| embed the demo table, warm (every vector from the on-disk cache) "
        f"| {d['embed_warm_s'] * 1000:.0f} ms |",
    ]
    for k, v in d["fit_s"].items():
        out.append(f"| fit K = {k} from cached embeddings: default (K-means + 5-fold CV of "
                   f"shrinkage) / paper-exact | {v['default (auto shrinkage)']:.2f} s / "
                   f"{v['paper']:.2f} s |")
    out += [
        "\nThe first fit (K = 16) also pays for importing scikit-learn.\n",
        f"### Held-out scores (K = 64, 30 % test inside each task; {d['n_train']} train / "
        f"{d['n_test']} test)\n",
        "Mean score of the model each method picks (1 = correct):\n",
        "| method | seed 0 | seed 1 | seed 2 | mean |", "|---|---:|---:|---:|---:|",
    ]
    for m, name in NAMES.items():
        s = h[m]["seeds"]
        out.append(f"| {name} | {s[0]:.4f} | {s[1]:.4f} | {s[2]:.4f} | **{h[m]['mean']:.4f}** |")
    out += [
        f"\nShrinkage chosen by cross-validation: τ = "
        f"{', '.join(f'{x:g}' for x in d['shrinkage_chosen'])}.\n",
        "Other settings, same seeds (mean):\n", "| variant | mean |", "|---|---:|",
        *[f"| {k} | {v:.4f} |" for k, v in d["variants"].items()],
        "\n### A slice with one dominant model\n",
        f"mmlu + math ({ds['n']} queries), where llama-3.3-nemotron-super-49b-v1 leads; "
        f"seeds 0–4, mean:\n",
        "| method | mean |", "|---|---:|",
        *[f"| {NAMES[m]} | {ds[m]:.4f} |" for m in ("router", "paper", "best_single", "knn",
                                                     "oracle")],
        f"\nτ chosen: {', '.join(f'{x:g}' for x in ds['shrinkage_chosen'])} "
        f"(1000 ≈ \"use the best single model\").\n",
        "### K sweep (the paper's Figure 3; seed 0)\n",
        "| K | router (default) | paper-exact |", "|---:|---:|---:|",
        *[f"| {r['k']} | {r['router']:.4f} | {r['paper']:.4f} |" for r in d["sweep_k_seed0"]],
        "\n### Number of selected models (the paper's Figure 2; seed 0, K = 64)\n",
        "| N models (automatic selection) | router |", "|---:|---:|",
        *[f"| {r['n']} | {r['router']:.4f} |" for r in d["sweep_models_seed0"]],
        "",
    ]
    return out


def main() -> None:
    d = json.loads((ROOT / "bench" / "core.json").read_text())
    path = ROOT / "BENCHMARKS.md"
    old = path.read_text() if path.exists() else ""
    reading = ""
    if "### Reading" in old:
        reading = "### Reading" + old.split("### Reading", 1)[1].split(VOTE_HEADING, 1)[0]
    vote = VOTE_HEADING + old.split(VOTE_HEADING, 1)[1] if VOTE_HEADING in old else ""
    path.write_text("\n".join(core_section(d)) + "\n" + reading + vote)


if __name__ == "__main__":
    main()
