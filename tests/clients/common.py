"""What the real-client tests share: the scripted models and the conversations they send.

The profile routes math questions to qwen2.5, whose seeded replies are 42, 42, 41: a 6-sample
vote is 4 × 42 to 2 × 41, and its text is the winning sample's, `#### 42`. Trivia questions
go to llama3.1, which always says `The answer is 41.`
"""

from __future__ import annotations

from tests.fake_ollama import ModelScript
from tests.test_cli_ollama import MATH, TRIVIA

QWEN = "qwen2.5:7b-instruct"
LLAMA = "llama3.1:8b"
QUESTION = MATH[0]
TRIVIA_QUESTION = TRIVIA[0]
VOTED_TEXT = "#### 42"
VOTES = {"42": 4, "41": 2}
LLAMA_TEXT = "The answer is 41."
SAMPLES = 6


def scripts() -> dict[str, ModelScript]:
    """The scripted models (see the module docstring)."""
    return {QWEN: ModelScript(replies=["#### 42", "#### 42", "so 41\n#### 41"]),
            LLAMA: ModelScript(replies=[LLAMA_TEXT]),
            "nomic-embed-text": ModelScript()}


def user(text: str = QUESTION) -> list[dict[str, str]]:
    """A one-turn conversation."""
    return [{"role": "user", "content": text}]


def two_turns() -> list[dict[str, str]]:
    """A math question, the vote's answer, then a trivia question: a chat that keeps its model
    (issue 21: routed by its first user message) stays on qwen2.5 and answers `#### 42`;
    routed per turn it would go to llama3.1."""
    return [*user(QUESTION), {"role": "assistant", "content": VOTED_TEXT},
            *user(TRIVIA_QUESTION)]


