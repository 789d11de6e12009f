"""The README's code blocks are programs: each runs, as written, against the test broker."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_readme_has_code_to_run() -> None:
    """The README shows code (so the test below cannot pass by finding none)."""
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_code_block_runs(index: int, bootstrap: str, tmp_path: Path) -> None:
    """Code block ``index`` of the README runs to completion in a fresh interpreter, exit code 0,
    with the test broker's address in place of localhost:9092."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    existing = set(admin.list_topics())
    missing = [NewTopic(t, 1, 1) for t in ("orders", "enriched") if t not in existing]
    if missing:
        admin.create_topics(missing)
    admin.close()
    script = tmp_path / f"readme_{index}.py"
    script.write_text(BLOCKS[index].replace("localhost:9092", bootstrap), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=90, check=False
    )
    assert 0 == done.returncode, done.stderr[-3000:]


def test_the_hook_table_names_every_hook() -> None:
    """Every hook method a hook object can implement has a row in the README's hook table."""
    from kafkahooks.hooks._protocols import HOOK_METHODS

    table = README.read_text(encoding="utf-8").split("## Hooks", 1)[1].split("\n\n**", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [] == [method for method in HOOK_METHODS if not any(f"`{method}(" in row for row in rows)]
