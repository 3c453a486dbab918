"""Issue 19, item 10: the README is a front door (its two commands first, then where to go
next); the reference lives in docs/, every relative link resolves, and the documented vote
command for the tests' SmolLM2 maps every routed model of the demo table."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/GUIDE.md", "docs/ROUTING.md", "docs/LIMITS.md"]


def test_readme_opens_with_the_two_commands_and_stays_short():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    assert blocks[0].strip() == "bash scripts/setup.sh && avengers data && streamlit run app.py"
    assert blocks[1].strip() == "bash scripts/setup.sh --test && ruff check . && python3 -m pytest"
    assert text.index("AVENGERS_DATA_DIR") < text.index("```bash")  # offline hint first
    assert len(text.split()) < 800


def test_relative_links_resolve():
    for doc in DOCS:
        path = ROOT / doc
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", path.read_text()):
            if "://" not in target:
                assert (path.parent / target).exists(), (doc, target)


def test_limits_and_safety_section_lives_in_docs():
    assert "\n## Limits and safety\n" in (ROOT / "docs/LIMITS.md").read_text()


def test_documented_smollm2_map_covers_the_demo_models(demo_table):
    from tests.support.engine import MODEL

    mapping = json.loads((ROOT / "assets/model_map_smollm2.json").read_text())
    assert set(mapping) == set(demo_table.models) and set(mapping.values()) == {MODEL}
    assert "--model-map assets/model_map_smollm2.json" in (ROOT / "README.md").read_text()
