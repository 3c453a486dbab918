"""Answer extraction: turn a model's free-form reply into a canonical answer that can be voted on.

Why: repeated samples only agree if `1,000`, `1000` and `\boxed{1000.0}` count as the same
answer, and only help if a wrong reading never wins. The kind of answer (number, choice,
text, free) comes from the task or the user. Every kind goes through one canonical vote
key: equal keys vote together, and grading compares the same keys (issue 11).

What is read, per kind (the README's "Limits and safety" lists it for users):
- every kind: inline reasoning is dropped first (`answers.thinking.split_thinking`:
  text before the first `</think>`); a reply cut off inside `<think>` has no answer.
- number: the GSM8K `#### n` line, else the last `\boxed{}`, else the sentence after
  "the answer is" / "Answer:", else the last number. The span found is parsed by
  math-verify (LaTeX, `\frac`, plain fractions, unicode minus) and keyed by its exact value.
- choice: only the letters the question offers; see :func:`extract_choice`.
- text: TriviaQA/SQuAD normalisation of the answer sentence; see :func:`extract_text`.
"""

from __future__ import annotations

import ast
import difflib
import logging
import re
import string
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from avengers_core.answers.kinds import KINDS, LETTERS, OPTION_LINE, query_options
from avengers_core.answers.thinking import CUT_OFF, split_thinking

NO_NUMBER = "no number found"
NO_LETTER = "no offered letter found"
NO_TEXT = "no answer text found"
EMPTY = "empty reply"
TOO_SLOW = "unparsable in time"
"""Reasons given by :func:`extract_with_reason` when there is no answer."""


# -- numbers -----------------------------------------------------------------------------

MAX_SPAN = 200
"""Characters of an answer span handed to math-verify. Its own timeout (SIGALRM) works only
in the main thread and votes run in worker threads, so the work is bounded here instead."""
MAX_EXPONENT = 10_000
"""Powers and factorials above this are not evaluated (`9^{9^9}` would never finish)."""
PARSE_SECONDS = 5
"""math-verify's own timeout, used where it can be (the main thread)."""

_MINUS = str.maketrans({"\u2212": "-", "\ufe63": "-", "\uff0d": "-"})
_DASH_MINUS = re.compile(r"[\u2012\u2013\u2014](?=[\d.$\\])|(?<=\d )[\u2012\u2013\u2014](?= \d)")
"""A figure, en or em dash read as minus (issue 22: "= –7" is -7): where a number follows at
once (`–7`, `–\\frac`), or between spaced numbers (`2 – 9`). A dash set between words and
a number with spaces (`the result — 42`) stays punctuation."""
_SPACES = str.maketrans({"\u00a0": " ", "\u2009": " ", "\u202f": " "})
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_PLAIN = re.compile(
    rf"(?<![\w.])-?\\?\$?\s?(?:{_NUM})(?:\s?/\s?-?\$?(?:{_NUM}))?(?![\w/])(?:\s?\\?%)?"
)
_LATEX_FRAC = re.compile(r"-?\\[dt]?frac(?:\{[^{}]*\}|\s*\d){2}")
_MARK = re.compile(r"####\s*([^\n]*)")
_ANSWER_IS = re.compile(
    r"(?i:final answer|the answer|answer)(?i:\s+to\s+(?:this|the)(?:\s+\w+)?\s+question)?"
    r"[*_\s]*(?i:is|:|=|would be|will be)[*_\s:=]*"
)
_COMPLETE = re.compile(r"[.!?][\s*_`'\")\]$]*$")

logging.getLogger("math_verify").addHandler(logging.NullHandler())  # no stderr noise


class _Unparsable(Exception):
    """A span math-verify could not turn into a value in time (the reason is the message)."""


def canonical_number(s: str) -> str | None:
    """The vote key of a lone number or fraction: `1,000` / `1000.0` / `$1000` / `2000/2`
    -> `1000`; `3/4` / `\\frac34` -> `0.75`; `1/3` stays exact; `−5` (U+2212) -> `-5`.
    None when `s` is not just a number."""
    s = _DASH_MINUS.sub("-", s.strip().translate(_MINUS).translate(_SPACES)).rstrip(".")
    if not s or len(s) > MAX_SPAN:
        return None
    whole = _PLAIN.fullmatch(s) or _LATEX_FRAC.fullmatch(s)
    if whole is None:
        inner = _boxed(s)
        if inner is None or not s.startswith("\\boxed"):
            return None
        s = f"\\boxed{{{inner}}}"
    try:
        return _parse_key(s)
    except _Unparsable:
        return None


def _parse_key(span: str) -> str | None:
    """The canonical key of the value math-verify reads in `span` (None: no value)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse
    from math_verify.errors import TimeoutException

    span = _DASH_MINUS.sub("-", span.translate(_MINUS))[:MAX_SPAN]
    span = re.sub(r"\\?%", "", span)  # GSM8K golds write `25%` as 25: percent signs drop
    span = re.sub(r"\\?\$(?=\s?[\d.])", "", span)  # currency, not a math delimiter
    configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    main = threading.current_thread() is threading.main_thread()
    try:
        found = parse(span, configs, parsing_timeout=PARSE_SECONDS if main else None,
                      raise_on_error=True)
    except TimeoutException:
        raise _Unparsable(TOO_SLOW) from None
    except Exception:  # math-verify's LaTeX grammar refused it: no value here
        return None
    values = [v for v in found if not isinstance(v, str)]
    return _value_key(values[0]) if values else None


def _value_key(value: Any) -> str | None:
    """Exact numbers as `_format` writes them; other expressions as sympy prints them."""
    import sympy

    if isinstance(value, sympy.Eq) and isinstance(value.lhs, sympy.Symbol):
        value = value.rhs  # `x = 5` answers 5
    if _too_big(value):
        raise _Unparsable(TOO_SLOW)
    value = value.doit()
    if getattr(value, "is_Rational", False):
        return _format(Fraction(int(value.p), int(value.q)))
    if getattr(value, "is_Float", False):
        return _format(Fraction(Decimal(str(value))))
    return re.sub(r"\s+", "", sympy.sstr(value)) or None


def _too_big(value: Any) -> bool:
    """True if evaluating `value` could take unbounded time: a power or factorial whose
    size is itself a power, or over MAX_EXPONENT."""
    import sympy

    for node in sympy.preorder_traversal(value):
        if isinstance(node, sympy.Pow | sympy.factorial):
            size = node.args[1] if isinstance(node, sympy.Pow) else node.args[0]
            if any(isinstance(n, sympy.Pow | sympy.factorial)
                   for n in sympy.preorder_traversal(size)):
                return True
            if size.is_number and abs(size) > MAX_EXPONENT:
                return True
    return False


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


def _sentence(text: str) -> str:
    """`text` up to the end of its first sentence: a full stop before a space, a capital or
    the end, that is not a decimal point or an abbreviation's (see :func:`_is_abbreviation`)."""
    for m in re.finditer(r"[.!?](?=\s|$)", text):
        if m.group() != "." or not _is_abbreviation(text[: m.start()]):
            return text[: m.start()]
    return text


_ABBREVIATIONS = frozenset(
    "st mt ft mr mrs ms dr jr sr prof gen col lt sgt capt rev hon no vs etc approx co inc ltd "
    "corp dept univ ave blvd rd jan feb mar apr jun jul aug sep sept oct nov dec".split()
)


def _is_abbreviation(before: str) -> bool:
    """True if the word ending `before` is an abbreviation (`St`) or an initial: a capital
    letter first in `before` or after a capitalised word (`J. K. Rowling`, `John F.`; not
    `vitamin C.`)."""
    words = re.split(r"[\s(\"'*]+", before.strip())
    word = words[-1]
    if word.lower() in _ABBREVIATIONS or re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", word):
        return True  # `St.`, or dotted initials `J.K.`, `U.S.`
    initial = len(word) == 1 and word.isupper()
    return initial and (len(words) == 1 or words[-2][:1].isupper())


def _number_span(text: str) -> tuple[str | None, str]:
    """The part of `text` that states the number, and how it was found."""
    marks = _MARK.findall(text)
    for line in reversed(marks):
        if _PLAIN.search(line) or "\\" in line:
            return line, "mark"
    boxed = _boxed(text)
    if boxed is not None:
        return f"\\boxed{{{boxed}}}", "boxed"
    said = list(_ANSWER_IS.finditer(text))
    if said:
        rest = _sentence(text[said[-1].end():].split("\n", 1)[0])
        if _PLAIN.search(rest) or "\\" in rest:
            return rest, "said"
    return None, "last"


_RESULT = r"=|≈|~|\b(?i:about|approximately)\b"
"""What ends a chain and precedes its result: `=`, and the approximate `≈`, `~`, `about`
(issue 22: "42 + 82 ≈ 124" states 124)."""
_CHAIN = re.compile(rf"\s*[-$(]?\d[\d\s+\-*/×x÷().,$]*(?:{_RESULT})")


def _stated(span: str) -> str:
    """The number an answer span states: the result of a chain it opens with (`240 + 400 =
    640`, or `42 + 82 ≈ 124`: the last result; none when no number follows), else its first
    number."""
    if _CHAIN.match(span):
        parts = re.split(_RESULT, span)[1:]
        results = [m for part in parts if (m := _PLAIN.match(part.lstrip(" *$~≈")))]
        return results[-1].group() if results else ""
    first = _PLAIN.search(span)
    return first.group() if first else ""


def _ends_complete(text: str) -> bool:
    """True if `text` ends a sentence with its brackets closed (a reply cut mid-expression
    leaves one open), or its last line is only a number (`**72**`)."""
    tail = text.rstrip().rsplit("\n", 1)[-1]
    closed = tail.count("(") == tail.count(")") and tail.count("[") == tail.count("]")
    return (closed and bool(_COMPLETE.search(tail))) or bool(_PLAIN.fullmatch(tail.strip(" *_`$")))


def extract_number(text: str) -> str | None:
    """GSM8K `#### n`, then `\\boxed{}`, then "the answer is", then the last number of a
    reply that ends a sentence (one cut off mid-sentence by the token limit states none)."""
    return _number_with_reason(text)[0]


def _number_with_reason(text: str, whole: bool = False) -> tuple[str | None, str | None]:
    text = _DASH_MINUS.sub("-", text.translate(_MINUS).translate(_SPACES))
    span, how = _number_span(text)
    try:
        if span is not None:
            if how == "boxed" or "\\" in span:  # LaTeX: math-verify finds the expression
                key = _parse_key(span)
            else:
                key = _parse_key(_stated(span))
            if key is not None:
                return key, None
        last = [m for p in (_PLAIN, _LATEX_FRAC) for m in p.finditer(text)]
        # a reply cut mid-sentence states no answer; one the engine ended itself is whole
        if last and (whole or _ends_complete(text)):
            key = _parse_key(max(last, key=lambda m: (m.end(), -m.start())).group())
            if key is not None:
                return key, None
    except _Unparsable as e:
        return None, str(e)
    return None, NO_NUMBER


# -- multiple choice ---------------------------------------------------------------------

"""An option line `A. text`, `B) text` or `(C) text` (`A:` starts a dialogue's answer)."""
_WRAP = r"[\s*_`\"'$\[({]*"
_LETTER_ANCHOR = re.compile(
    r"(?i:\b(?:answer|option|choice)\b)(?:\s+(?i:is|would be|will be|should be))?"
    rf"[\s*_:=\-]*(?i:option\s+|choice\s+|\\boxed\{{|\\text\{{)?{_WRAP}"
    r"([B-HJ]|[AI](?!\s+(?!(?:is|because|since|as)\b)[a-z])|\([a-j]\))(?![\w'’])"
)
_BOXED_LETTER = re.compile(r"\\boxed\{\s*(?:\\text(?:bf)?\{)?\s*\(?([A-J])\)?\s*\}")
_CLOSING_LETTER = re.compile(r"(?::\s*[*_(\[]*|[*_(\[]+)([A-J])[*_)\]]*\.?\s*$")
_PAREN_LETTER = re.compile(r"(?m)^[\s*_>-]*\(([A-J])\)")
_LONE = re.compile(r"[\s*_`\"'(\[]*([A-Ja-j])[\s*_`\"')\].:]*")
_LONE_LINE = re.compile(r"(?m)^[ \t*_`\"'(\[]*([A-J])[ \t*_`\"')\].:]*$")


def offered_letters(choices: Sequence[str] | None = None, query: str | None = None) -> str:
    """The letters a question offers: one per option in `choices`, else the option lines of
    `query` (`A)`, `(B)`, `C.`; at least two), else all of A–J."""
    if choices:
        return LETTERS[: min(len(choices), len(LETTERS))]
    options = query_options(query or "")
    return "".join(options) if options else LETTERS


def extract_choice(
    text: str, choices: Sequence[str] | None = None, query: str | None = None
) -> str | None:
    """A letter the question offers, or None.

    In order: an answer statement (`Answer: **B**`, `the correct option is (b)`), then
    `\\boxed{B}`, then a closing `So: **(B)**`, then a reply that is only a letter (`B`,
    `**B.**`), then letters set apart (`(B)` first on a line, a line `B.`, an option line
    `B. …`) once the repeated options are dropped, when they name one letter; last, the
    one option whose text the reply names. A capital `A` or `I` followed by a lower-case
    word is a word, not a letter.
    """
    offered = offered_letters(choices, query)
    texts = list(choices) if choices else list(query_options(query or "").values())

    def pick(found: Sequence[str]) -> str | None:
        letters = [f.strip("()").upper() for f in found]
        letters = [x for x in letters if x in offered]
        return letters[-1] if letters else None

    for pattern in (_LETTER_ANCHOR, _BOXED_LETTER, _CLOSING_LETTER):
        got = pick(pattern.findall(text))
        if got:
            return got
    lone = _LONE.fullmatch(text)
    if lone and lone.group(1).upper() in offered:
        return lone.group(1).upper()
    kept = _drop_listed_options(text, texts)
    keys = [normalize_text(t) for t in texts]
    marked = [a or b for a, b, body in OPTION_LINE.findall(kept)
              if not _conflicts(a or b, normalize_text(body), keys)]
    marked += _PAREN_LETTER.findall(kept) + _LONE_LINE.findall(kept)
    named = {x for x in marked if x in offered}
    if len(named) == 1:
        return named.pop()
    if not texts:
        return None
    said = list(_ANSWER_IS.finditer(kept))
    if said:  # the option named in the answer statement, if one is
        got = _choice_by_text(_sentence(kept[said[-1].end():]), texts[: len(offered)])
        if got:
            return got
    return _choice_by_text(kept, texts[: len(offered)])


def _conflicts(letter: str, body: str, keys: Sequence[str]) -> bool:
    """True for an option line whose text is another option's (`B. Voluntary manslaughter`
    when that is C): the letter is not to be trusted, the text is read instead."""
    index = LETTERS.index(letter)
    return body in keys and (index >= len(keys) or keys[index] != body)


def _drop_listed_options(text: str, texts: Sequence[str]) -> str:
    """`text` without its option lines when two or more of them repeat the options as the
    question lists them (`C. Helium` when option C is Helium): a model restating the
    options chooses none of them, not even one restated a little differently or under
    another letter (80 % character similarity to some option)."""
    keys = {LETTERS[i]: normalize_text(t) for i, t in enumerate(texts[: len(LETTERS)])}

    def repeats(line: str) -> str | None:
        m = OPTION_LINE.match(line)
        letter = m and (m.group(1) or m.group(2))
        return letter if m and normalize_text(m.group(3)) == keys.get(letter) else None

    def restates(line: str) -> bool:  # an option line close to some option's text
        m = OPTION_LINE.match(line)
        body = normalize_text(m.group(3)) if m else ""
        return any(difflib.SequenceMatcher(None, body, k).ratio() >= 0.8 for k in keys.values())

    lines = text.split("\n")
    if len({r for r in map(repeats, lines) if r}) < 2:
        return text  # one option line is a choice, not a listing
    return "\n".join(line for line in lines if not restates(line))


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
_PUNCT = str.maketrans({c: " " for c in string.punctuation + "‘’´`“”"})


def normalize_text(text: str) -> str:
    """TriviaQA's `normalize_answer` (its evaluation script, as SQuAD's): lower case,
    punctuation to spaces, no articles (a, an, the), single spaces."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT))
    return " ".join(text.split())


_CLAUSE = re.compile(
    r",\s+(?:which|where|who|whose|when|because|since|as|but)\b|\s+because\b"
)
_NO_ANSWER = re.compile(
    r"^unknown$|\b(?:(?:is|was|are|remains) unknown|not (?:known|available|sure)|no information"
    r"|(?:do not|don ?t|cannot|can ?t) (?:know|say|be determined|answer|determine))\b"
)


def extract_text(text: str, query: str | None = None) -> str | None:
    """A short answer: the sentence after the last "the answer is" / "Answer:", else the
    first sentence of the first non-empty line, up to a relative clause (`, which …`);
    normalised by :func:`normalize_text`. A full stop after an abbreviation or an initial
    (`St.`, `J.`, `J.K.`) does not end it. With `query`, an answer made only of the
    question's words repeats the question and states no answer (None), and so does a
    sentence that says it is unknown or that the model does not know."""
    text = re.sub(r"<answer>\s*:?", "", text)  # the prompt's placeholder, echoed
    said = list(_ANSWER_IS.finditer(text))
    if said:
        candidate = _sentence(text[said[-1].end():].split("\n", 1)[0])
    else:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        candidate = _sentence(lines[0].strip()) if lines else ""
    key = normalize_text(_CLAUSE.split(candidate, maxsplit=1)[0])
    if query and key and set(key.split()) <= set(normalize_text(query).split()):
        return None
    if _NO_ANSWER.search(key):  # "the answer is unknown", "I don't know"
        return None
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


def extract_with_reason(
    text: str, kind: str, choices: Sequence[str] | None = None, query: str | None = None,
    whole: bool = False,
) -> tuple[str | None, str | None]:
    """`(answer, None)`, or `(None, reason)` when `text` holds no answer of `kind`.

    `whole`: the engine ended the reply itself (not the token limit), so a number on its
    last line counts even without a closing full stop (SmolLM2 answers `7 + 3 = 10`);
    otherwise such a reply may have been cut mid-sentence and states no answer.

    The answer is the canonical vote key: equal keys are one answer. Reasons: "reasoning
    cut off" (an unclosed `<think>`), "empty reply", "no number found", "unparsable in
    time", "no offered letter found", "no answer text found". `choices` (or, without
    them, the option lines of `query`) say which letters a choice question offers.
    Raises ValueError for an unknown kind.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown answer kind {kind!r}; expected one of {KINDS}")
    split = split_thinking(text)
    if split.cut_off:
        return None, CUT_OFF
    answer = split.answer
    if not answer.strip():
        return None, EMPTY
    if kind == "number":
        return _number_with_reason(answer, whole)
    if kind == "choice":
        got = extract_choice(answer, choices, query)
        return (got, None) if got else (None, NO_LETTER)
    if kind == "text":
        got = extract_text(answer, query)
        return (got, None) if got else (None, NO_TEXT)
    key = free_key(answer)
    return (key, None) if key else (None, EMPTY)


def extract(text: str, kind: str, choices: Sequence[str] | None = None) -> str | None:
    """The canonical answer (vote key) in `text` for `kind`, or None when none is found.

    Reasoning (`<think>…</think>`, or anything before a lone `</think>`) is dropped first:
    its numbers are drafts. See :func:`extract_with_reason` for why an answer is missing.
    """
    return extract_with_reason(text, kind, choices)[0]
