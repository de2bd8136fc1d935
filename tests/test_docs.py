"""Every Python code block in README.md and docs/*.md runs as written.

A block runs on its own, in a fresh namespace and a temporary working directory, so it must carry
its imports and define every name it uses. An HTML comment on the line before the fence changes
that: ``<!-- doc-test: pytest -->`` runs the block as a test module with pytest (for examples
that are tests), ``<!-- doc-test: skip: why -->`` marks a deliberately partial snippet, which is
reported as skipped with its reason.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(
    r"^(?:<!-- doc-test: (?P<mode>[a-z]+)(?::\s*(?P<why>[^>]*?))?\s*-->\n)?```python\n(?P<code>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    mode: str
    why: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            line = text.count("\n", 0, match.start("code"))
            found.append(Block(path, line, match["mode"] or "run", match["why"] or "", match["code"]))
    return found


BLOCKS = blocks()


def test_the_documents_have_code_blocks() -> None:
    """Guards the extraction itself: a broken pattern would silently test nothing."""
    assert len(BLOCKS) >= 10
    assert {block.mode for block in BLOCKS} <= {"run", "pytest", "skip"}


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_the_code_block_runs(block: Block, tmp_path: Path) -> None:
    if block.mode == "skip":
        assert block.why, f"{block.id}: say why the snippet is partial"
        pytest.skip(f"partial on purpose: {block.why}")
    name = "test_doc_example.py" if block.mode == "pytest" else "doc_example.py"
    script = tmp_path / name
    # Line numbers in tracebacks point into the document.
    script.write_text("\n" * block.line + block.code, encoding="utf-8")
    command = (
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name]
        if block.mode == "pytest"
        else [sys.executable, name]
    )
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{block.id} failed:\n{result.stdout}\n{result.stderr}"
