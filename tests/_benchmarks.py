"""The scripts under ``benchmarks/`` (not a package), loaded as modules for their tests."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str) -> Any:
    """``benchmarks/NAME.py`` as a fresh module."""
    spec = importlib.util.spec_from_file_location(f"{name}_bench", BENCHMARKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(command: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> None:
    """Run a benchmark command as a user would (the environment plus ``env``); fail with the end
    of its output if it does not succeed."""
    done = subprocess.run(
        command, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert 0 == done.returncode, done.stdout[-2000:] + done.stderr[-2000:]
