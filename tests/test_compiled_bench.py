"""``benchmarks/compiled.py`` builds what it says it measures: the hot modules compiled by mypyc,
imported compiled by a fresh process, and behaving as the pure modules do (their own tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests._benchmarks import load

ROOT = Path(__file__).resolve().parents[1]


def test_the_request_set_compiles_and_passes_its_modules_tests(tmp_path: Path) -> None:
    if (
        shutil.which(os.environ.get("CC", "cc")) is None
        or not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists()
    ):
        pytest.skip("no C compiler or Python headers: mypyc cannot build")
    script = load("compiled")
    modules = script.SETS["request"]
    path = script.build(modules, tmp_path)
    assert {f"kafkahooks.{m[:-3].replace('/', '.')}": True for m in modules} == script.compiled_modules(path, modules)
    # The compiled tap, batch walk and request record, under their own tests.
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_tap.py", "tests/test_batches.py"],
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(path)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert 0 == done.returncode, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout
