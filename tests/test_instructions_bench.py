"""``benchmarks/instructions.py`` reads cachegrind's output as cachegrind wrote it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests._benchmarks import load


def _script() -> Any:
    return load("instructions")


def _need_valgrind() -> None:
    if shutil.which("valgrind") is None:
        if os.environ.get("KAFKAHOOKS_REQUIRE_VALGRIND"):
            pytest.fail("KAFKAHOOKS_REQUIRE_VALGRIND is set and valgrind is not installed")
        pytest.skip("valgrind is not installed (Debian: apt-get install valgrind)")


def test_the_parser_accounts_for_every_instruction_cachegrind_counted(tmp_path: Path) -> None:
    _need_valgrind()
    out = tmp_path / "cachegrind.out"
    valgrind = ["valgrind", "--tool=cachegrind", "--cache-sim=yes", "--branch-sim=yes", f"--cachegrind-out-file={out}"]
    subprocess.run(
        [*valgrind, sys.executable, "-S", "-c", "sum(i * i for i in range(200_000))"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    summary, functions = _script().parse(out)
    for event in ("Ir", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw", "Bcm", "Bim"):
        assert summary[event] > 0
        assert sum(counts[event] for counts in functions.values()) == summary[event]
    # The generator's 200 000 steps run in the eval loop: the most instructions of any function.
    busiest = max(functions, key=lambda fn: functions[fn]["Ir"])
    assert busiest.endswith(":_PyEval_EvalFrameDefault")
    assert busiest.startswith("ceval.c:")


def test_each_thread_is_counted_apart_and_the_parts_add_up(tmp_path: Path) -> None:
    _need_valgrind()
    out = tmp_path / "callgrind.out"
    valgrind = [
        "valgrind", "--tool=callgrind", "--separate-threads=yes", "--compress-strings=no", "--compress-pos=no",
        f"--callgrind-out-file={out}",
    ]  # fmt: skip
    # The other thread does ten times the main thread's loop: the split must show it.
    program = (
        "import threading\n"
        "t = threading.Thread(target=lambda: sum(i * i for i in range(300_000)))\n"
        "t.start(); t.join()\n"
        "sum(i * i for i in range(30_000))\n"
    )
    subprocess.run([*valgrind, sys.executable, "-S", "-c", program], check=True, capture_output=True, timeout=300)
    script = _script()
    parts = script.by_thread(out)
    total, main, other = parts["all threads"], parts["main thread"], parts["other threads"]
    assert total[0]["Ir"] == main[0]["Ir"] + other[0]["Ir"] > 0
    for summary, functions in (total, main, other):
        # Own costs only: a call's inclusive line counted too would exceed the summary.
        assert sum(counts["Ir"] for counts in functions.values()) == summary["Ir"]
    eval_loop = next(fn for fn in total[1] if fn.endswith(":_PyEval_EvalFrameDefault"))
    assert other[1][eval_loop]["Ir"] > main[1][eval_loop]["Ir"] > 0


def test_a_side_run_at_full_speed_reports_its_pace_and_batching(bootstrap: str) -> None:
    """The run that measures valgrind's slowdown: the bench's own worker, no simulator, its wall
    time per message, and the records per Produce request read back from the broker."""
    import argparse

    from kafka.admin import KafkaAdminClient

    script = _script()
    args = argparse.Namespace(client="aiokafka", workload="produce", threads=False, stretch=100.0, hash_seed="0")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        run = script.run_side(bootstrap, admin, args, "dsm", 2000, None, None)
    finally:
        admin.close()
    assert run.counts == {}  # no counts without valgrind
    assert 0 < run.wall_us_per_message < 10_000
    # 100-byte values in aiokafka's default 16 KiB batches: many a request, never more than fit.
    assert run.records_per_request is not None
    assert 10 < run.records_per_request <= 16_384 / 100
