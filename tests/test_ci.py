"""CI runs exactly the README's test command: lint, type check and tests."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"this is exactly what CI runs\):\n\n```bash\n(.+?)\n```", readme)
    assert block is not None, "the README's test command block is missing"
    command = block.group(1).strip()
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert ci[-1] == command
    for step in ("ruff check .", "mypy sdsim", "pytest"):
        assert step in command


def test_every_docs_page_the_code_or_model_cites_exists():
    """Outputs cite the repository's own pages (docs/<name>.md), never a document users do not have."""
    cited: set[str] = set()
    files = [*(ROOT / "sdsim").rglob("*.py"), *(ROOT / "sdsim" / "text").glob("*.yaml"), *(ROOT / "model").glob("*.yaml")]
    for f in files:
        cited |= set(re.findall(r"docs/([\w.-]+\.md)", f.read_text(encoding="utf-8")))
    assert cited
    missing = sorted(p for p in cited if not (ROOT / "docs" / p).is_file())
    assert not missing, missing
