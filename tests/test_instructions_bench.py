"""``benchmarks/instructions.py`` reads cachegrind's output as cachegrind wrote it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "instructions.py"


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("instructions_bench", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_parser_accounts_for_every_instruction_cachegrind_counted(tmp_path: Path) -> None:
    if shutil.which("valgrind") is None:
        if os.environ.get("KAFKAHOOKS_REQUIRE_VALGRIND"):
            pytest.fail("KAFKAHOOKS_REQUIRE_VALGRIND is set and valgrind is not installed")
        pytest.skip("valgrind is not installed (Debian: apt-get install valgrind)")
    out = tmp_path / "cachegrind.out"
    valgrind = ["valgrind", "--tool=cachegrind", "--cache-sim=yes", "--branch-sim=yes", f"--cachegrind-out-file={out}"]
    subprocess.run(
        [*valgrind, sys.executable, "-S", "-c", "sum(i * i for i in range(200_000))"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    summary, functions = _script().parse(out)
    for event in ("Ir", "I1mr", "D1mr", "D1mw", "Bcm", "Bim"):
        assert summary[event] > 0
        assert sum(counts[event] for counts in functions.values()) == summary[event]
    # The generator's 200 000 steps run in the eval loop: the most instructions of any function.
    busiest = max(functions, key=lambda fn: functions[fn]["Ir"])
    assert busiest.endswith(":_PyEval_EvalFrameDefault")
    assert busiest.startswith("ceval.c:")
