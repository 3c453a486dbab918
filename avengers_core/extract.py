"""Answer extraction: turn a model's free-form reply into a canonical answer that can be voted on.

Why: repeated samples only agree if `1,000`, `1000` and `\\boxed{1000.0}` count as the same
answer. The kind of answer (number, choice, text, free) comes from the task or the user.
"""

from __future__ import annotations

import ast
import difflib
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

KINDS = ("number", "choice", "text", "free")
LETTERS = "ABCDEFGHIJ"

_TASK_KINDS = {
    "number": ("gsm8k", "math", "mgsm", "svamp", "aqua_num", "asdiv"),
    "choice": (
        "mmlu",
        "gpqa",
        "arc",
        "commonsense_qa",
        "openbook_qa",
        "logicgrid",
        "hellaswag",
        "winogrande",
    ),
    "text": ("natural_qa", "trivia_qa", "squad", "hotpot"),
    "free": ("mbpp", "human_eval", "humaneval", "commongen", "code"),
}


def kind_for_task(task: str | None, default: str = "free") -> str:
    """The answer kind for a task name (`gsm8k` -> number, `mmlu` -> choice...)."""
    if task:
        t = task.lower()
        for kind in ("free", "choice", "text", "number"):  # 'math' would match 'mathqa' last
            if any(name in t for name in _TASK_KINDS[kind]):
                return kind
    return default


# -- numbers -----------------------------------------------------------------------------

_NUM = r"-?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+"
_NUM_RE = re.compile(rf"(?<![\w.])({_NUM})(?:\s?%)?")
_FRAC_RE = re.compile(r"(-?)\\d?frac\{\s*(-?[\d.,]+)\s*\}\{\s*(-?[\d.,]+)\s*\}")
_SLASH_RE = re.compile(r"^\s*(-?\d+)\s*/\s*(\d+)\s*$")


def canonical_number(s: str) -> str | None:
    """`1,000` / `1000.0` / `$1000` / `2000/2` -> `1000`; fractions stay exact (`1/3`)."""
    s = s.strip().strip("$").replace("\\!", "").replace("{,}", ",")
    frac = _FRAC_RE.search(s)
    if frac:
        num, den = _to_fraction(frac.group(2)), _to_fraction(frac.group(3))
        if num is None or not den:
            return None
        value = num / den * (-1 if frac.group(1) else 1)
        return _format(value)
    slash = _SLASH_RE.match(s)
    if slash and int(slash.group(2)):
        return _format(Fraction(int(slash.group(1)), int(slash.group(2))))
    s = s.replace("$", "").replace(" ", "").removesuffix("%").removesuffix("\\%")
    value = _to_fraction(s)
    return None if value is None else _format(value)


def _to_fraction(s: str) -> Fraction | None:
    s = s.replace(",", "")
    try:
        d = Decimal(s)
    except InvalidOperation:
        return None
    return Fraction(d) if d.is_finite() else None


def _format(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den == 1:  # terminating decimal: write it out exactly
        d = Decimal(value.numerator) / Decimal(value.denominator)
        return format(d.normalize(), "f")
    return f"{value.numerator}/{value.denominator}"


def _boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (nested braces allowed)."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def _last_number(text: str) -> str | None:
    frac = list(_FRAC_RE.finditer(text))
    nums = list(_NUM_RE.finditer(text))
    if frac and (not nums or frac[-1].end() >= nums[-1].end()):
        return canonical_number(frac[-1].group(0))
    return canonical_number(nums[-1].group(1)) if nums else None


_ANSWER_IS = re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*[:=]?\s*", re.I)


def _after_answer_is(text: str) -> str | None:
    """The rest of the line after the last "the answer is" / "Answer:", if any."""
    matches = list(_ANSWER_IS.finditer(text))
    if not matches:
        return None
    return text[matches[-1].end() :].split("\n", 1)[0]


def extract_number(text: str) -> str | None:
    """GSM8K `#### n`, then `\\boxed{}`, then "the answer is", then the last number."""
    marks = re.findall(r"####\s*([^\n]+)", text)
    if marks:
        n = _last_number(marks[-1])
        if n is not None:
            return n
    boxed = _boxed(text)
    if boxed is not None:
        inner = re.sub(r"\\(?:text|mbox|mathrm)\{[^{}]*\}", "", boxed)
        inner = re.sub(r"^\s*[a-zA-Z]\s*=", "", inner)
        return canonical_number(inner) or _latex_key(inner) or None
    said = _after_answer_is(text)
    if said:
        n = _first_number(said)
        if n is not None:
            return n
    return _last_number(text)


def _first_number(text: str) -> str | None:
    m = _NUM_RE.search(text)
    return canonical_number(m.group(1)) if m else None


def _latex_key(s: str) -> str:
    s = re.sub(r"\\(left|right|displaystyle|,|;|!|\s)", "", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return re.sub(r"\s+", "", s).strip("$.")


# -- multiple choice ---------------------------------------------------------------------

_CHOICE_PATTERNS = [
    re.compile(
        r"(?i:answer)\s*(?:is|:)?\s*[:\-]?\s*(?:(?i:option)\s*)?(?:\(([A-Ja-j])\)|([A-J]))(?!\w)"
    ),
    re.compile(r"\\boxed\{\s*\(?([A-J])\)?\s*\}"),
    re.compile(r"(?m)^\s*\(?([A-J])[.):](?:\s|$)"),
    re.compile(r"\(([A-J])\)"),
    re.compile(r"(?:^|\s)([A-J])[.)](?:\s|$)"),
]


def extract_choice(text: str, choices: Sequence[str] | None = None) -> str | None:
    """A letter A–J: `Answer: C`, `\\boxed{C}`, `(C)`, `C.`, a bare `C`, or the option text."""
    for pat in _CHOICE_PATTERNS:
        found = pat.findall(text)
        if found:
            last = found[-1]
            return "".join(last).upper() if isinstance(last, tuple) else last.upper()
    stripped = text.strip().strip(".*()").strip()
    if len(stripped) == 1 and stripped.upper() in LETTERS:
        return stripped.upper()
    if choices:
        return _choice_by_text(text, choices)
    return None


def _choice_by_text(text: str, choices: Sequence[str]) -> str | None:
    reply = f" {normalize_text(text)} "
    hits: dict[str, int] = {}
    for i, option in enumerate(choices[: len(LETTERS)]):
        key = normalize_text(option)
        if key and f" {key} " in reply:
            hits.setdefault(key, i)
    # an option named only as part of a longer named option ("york" in "new york") is not a hit
    named = [i for k, i in hits.items() if not any(k != o and f" {k} " in f" {o} " for o in hits)]
    return LETTERS[named[0]] if len(named) == 1 else None  # two options named: no guess


def parse_choices(raw: object) -> list[str] | None:
    """Options from a list, a dict with `text` (and `label`/`labels`), or their repr string."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return None
    if isinstance(raw, dict):
        raw = raw.get("text")
    if isinstance(raw, list | tuple) and all(isinstance(x, str) for x in raw):
        return list(raw)
    return None


# -- short text --------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalize_text(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT))
    return " ".join(text.split())


def extract_text(text: str) -> str | None:
    """A short answer: after "the answer is" / "Answer:", else the first non-empty line."""
    said = _after_answer_is(text)
    if said:
        candidate = re.split(r"(?<=[^\d])\.(?:\s|$)", said)[0]
    else:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        candidate = lines[0] if lines else ""
    key = normalize_text(candidate)
    return key or None


# -- free text and code ------------------------------------------------------------------


def free_key(text: str) -> str:
    """Whitespace- and case-insensitive form used to spot identical free-text samples."""
    return " ".join(text.lower().split()).strip(" .")


@dataclass(frozen=True)
class FreeGroup:
    """Samples (indices into the input) judged near-identical; `center` is the most central."""

    members: tuple[int, ...]
    center: int


LONG_TEXT = 200  # characters; longer free texts are compared as word sequences


def group_free(
    texts: Sequence[str],
    embed: Callable[[list[str]], Sequence[Sequence[float]]] | None = None,
    similarity: float = 0.9,
) -> list[FreeGroup]:
    """Group near-identical texts: same normalised text, or character similarity (or, with
    `embed`, cosine similarity of embeddings) at least `similarity`. Largest group first."""
    keys = [free_key(t) for t in texts]
    n = len(texts)
    if n == 0:
        return []
    vecs = _unit(embed(list(texts))) if embed is not None else None
    # Long texts are compared word by word: character matching is quadratic on long,
    # repetitive replies (seconds per pair), word matching stays fast.
    units: list[str | list[str]] = [k.split() if len(k) > LONG_TEXT else k for k in keys]
    memo: dict[tuple[int, int], float] = {}

    def sim(i: int, j: int) -> float:
        if keys[i] == keys[j]:
            return 1.0
        if vecs is not None:
            return sum(a * b for a, b in zip(vecs[i], vecs[j], strict=True))
        pair = (min(i, j), max(i, j))
        if pair not in memo:
            a, b = units[i], units[j]
            if isinstance(a, str) != isinstance(b, str):
                a, b = keys[i].split(), keys[j].split()
            memo[pair] = difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
        return memo[pair]

    groups: list[list[int]] = []
    for i in range(n):
        for g in groups:
            if sim(g[0], i) >= similarity:
                g.append(i)
                break
        else:
            groups.append([i])
    out = []
    for g in groups:
        center = max(g, key=lambda i: (sum(sim(i, j) for j in g), -i))
        out.append(FreeGroup(tuple(g), center))
    out.sort(key=lambda fg: (-len(fg.members), fg.members[0]))
    return out


def _unit(vectors: Sequence[Sequence[float]]) -> list[list[float]]:
    out = []
    for v in vectors:
        norm = sum(x * x for x in v) ** 0.5 or 1.0
        out.append([x / norm for x in v])
    return out


# -- dispatch and grading ----------------------------------------------------------------


_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S)


def extract(text: str, kind: str, choices: Sequence[str] | None = None) -> str | None:
    """The canonical answer in `text` for `kind`, or None when none is found.

    A reasoning model's `<think>...</think>` block is ignored: its numbers are drafts.
    """
    text = _THINK.sub("", text)
    if kind == "number":
        return extract_number(text)
    if kind == "choice":
        return extract_choice(text, choices)
    if kind == "text":
        return extract_text(text)
    if kind == "free":
        return free_key(text) or None
    raise ValueError(f"unknown answer kind {kind!r}; expected one of {KINDS}")


def gold_answer(gold: str, kind: str, choices: Sequence[str] | None = None) -> str | None:
    """The canonical form of a labeled answer (`... #### 42` -> `42`, `C` -> `C`, option
    text -> its letter)."""
    gold = str(gold).strip()
    if kind == "number":
        return canonical_number(gold) or extract_number(gold)
    if kind == "choice":
        if len(gold) == 1 and gold.upper() in LETTERS:
            return gold.upper()
        if choices:
            for i, option in enumerate(choices[: len(LETTERS)]):
                if normalize_text(option) == normalize_text(gold):
                    return LETTERS[i]
        return extract_choice(gold, choices)
    if kind == "text":
        return normalize_text(gold) or None
    return free_key(gold) or None


def is_correct(reply: str, gold: str, kind: str, choices: Sequence[str] | None = None) -> bool:
    """Whether `reply` answers `gold`. Short text also counts when the gold answer appears
    whole inside the extracted answer (`in paris france` answers `Paris`)."""
    want = gold_answer(gold, kind, choices)
    got = extract(reply, kind, choices)
    if want is None or got is None:
        return False
    if kind == "text":
        return got == want or f" {want} " in f" {got} "
    return got == want
