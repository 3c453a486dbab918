"""A routing table with three specialists (issue 19): mathwiz is right on arithmetic, coder
on programming, quizzer on trivia, each mostly wrong elsewhere (right on one query in
eight of the other tasks, so no model is wrong everywhere off its task)."""

from __future__ import annotations

import csv
from pathlib import Path

MODELS = ("mathwiz", "coder", "quizzer")
TASKS = {"math": "mathwiz", "code": "coder", "trivia": "quizzer"}

MATH = [f"What is {a} times {b}?" for a, b in ((3, 4), (6, 8), (7, 5), (12, 11), (9, 6))]
MATH += [f"What is {a} plus {b}?" for a, b in ((15, 27), (120, 45), (33, 19), (8, 91))]
MATH += [f"How much is {a} divided by {b}?" for a, b in ((144, 12), (81, 9), (56, 7))]
MATH += ["What is 15% of 80?", "Compute the square root of 169.",
         "If a train travels 60 km in 1.5 hours, what is its average speed?",
         "Solve for x: 2x + 6 = 20."]
CODE = ["Write a Python function that reverses a list.",
        "How do I read a file line by line in Python?",
        "Write a SQL query that counts the rows of a table.",
        "Fix this JavaScript: const x = [1, 2, 3].mapp(v => v * 2);",
        "Write a bash one-liner that finds all .py files under a folder.",
        "Implement binary search in Java.",
        "What does a Python list comprehension look like? Give an example.",
        "Write a C function that returns the length of a string.",
        "How do I sort a dictionary by value in Python?",
        "Write a regular expression that matches an email address.",
        "Explain this Python error: TypeError: 'NoneType' object is not subscriptable.",
        "Write a Rust function that sums a vector of integers.",
        "How do I create a virtual environment with pip and venv?",
        "Write a Go program that prints hello world.",
        "Refactor this loop into a map call in JavaScript.",
        "Write a unit test with pytest for a function add(a, b)."]
TRIVIA = ["Who painted the Mona Lisa?", "What is the capital of Australia?",
          "Who wrote Pride and Prejudice?", "Which planet is known as the Red Planet?",
          "In which year did the Berlin Wall fall?", "Who composed the Four Seasons?",
          "What is the largest ocean on Earth?", "Who was the first person on the Moon?",
          "Which country hosted the 2016 Summer Olympics?",
          "What is the tallest mountain in Africa?", "Who discovered penicillin?",
          "What is the national animal of Scotland?", "Who sculpted David?",
          "Which river flows through Cairo?", "What is the capital city of Canada?",
          "Who wrote the novel One Hundred Years of Solitude?"]


def rows() -> list[dict]:
    """The table's rows: query, task and a 0/1 score per model (48 queries)."""
    out = []
    for task, queries in (("math", MATH), ("code", CODE), ("trivia", TRIVIA)):
        for i, q in enumerate(queries):
            scores = {m: float(TASKS[task] == m or i % 8 == 3) for m in MODELS}
            out.append({"query": q, "task": task, **scores})
    return out


def write_csv(path: Path) -> Path:
    """The table as a CSV file (query, task, one column per model) at `path`."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["query", "task", *MODELS])
        w.writeheader()
        w.writerows(rows())
    return path
