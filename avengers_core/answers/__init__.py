"""Answers: what a reply means. `kinds` (number, choice, text, free, and which one a query
is), `prompts` (the instruction that makes an answer extractable), `thinking` (reasoning
kept out of the vote), `extract` (an answer from a reply, by kind), `grading` (gold answers
and correctness, for calibration).

To add an answer kind: add it to `kinds.KINDS`, its extractor in `extract.extract_with_reason`,
its instruction in `prompts.make_prompt`, and its gold form in `grading.gold_answer`.
"""
