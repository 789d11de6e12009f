"""``benchmarks/native.py`` and the bench's worker wrapper: a profiler can run each side's worker,
told where the measured window starts and ends, and the native profile comes out per mode."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests._benchmarks import run

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).with_name("kafkahooks")

WRAPPER = """#!/bin/sh
# Runs a bench worker with a control FIFO whose commands land in {out}/commands-$$ (held open for
# reading throughout, as perf does).
ctl={out}/ctl$$
mkfifo "$ctl"
exec 3<>"$ctl"
cat <&3 > {out}/commands-$$ &
reader=$!
KAFKAHOOKS_BENCH_PROFILE_CONTROL="$ctl" "$@"
status=$?
sleep 0.5
kill $reader
exit $status
"""


def test_a_wrapper_runs_each_worker_and_hears_its_measured_window(tmp_path: Path, bootstrap: str) -> None:
    """With ``KAFKAHOOKS_BENCH_WRAPPER`` the runner starts each side's worker through it (given the
    interpreter and its arguments), the worker writes ``enable`` then ``disable`` on the control
    FIFO around what it measures, and the run's figures are as without it."""
    wrapper = tmp_path / "wrapper.sh"
    wrapper.write_text(WRAPPER.format(out=tmp_path))
    wrapper.chmod(0o755)
    run(
        [
            str(CLI), "bench", "--bootstrap", bootstrap, "--client", "aiokafka", "--workload", "produce",
            "--mode", "off", "--rounds", "1", "--messages", "2000", "--output", str(tmp_path / "out"),
        ],
        env={"KAFKAHOOKS_BENCH_WRAPPER": str(wrapper)},
    )  # fmt: skip
    data = json.loads((tmp_path / "out" / "throughput.json").read_text())
    assert all(run["ok"] for run in data["runs"])
    heard = [p.read_text().split() for p in tmp_path.glob("commands-*")]
    assert len(heard) >= len(data["runs"])  # one wrapped worker per side and pair, warm-up included
    assert 0 == len(heard) % 2
    assert all(["enable", "disable"] == commands for commands in heard)


def test_the_native_profile_compares_each_mode_with_bare(tmp_path: Path, bootstrap: str) -> None:
    """``native.py`` runs the bench under perf and reports, per mode, its application thread's
    samples over bare's and the symbols whose share grew. Without a working perf it skips, saying
    why, except in CI (``KAFKAHOOKS_REQUIRE_PERF``), which installs it."""
    required = bool(os.environ.get("KAFKAHOOKS_REQUIRE_PERF"))
    why = None
    if shutil.which("perf") is None:
        why = "perf is not installed (apt-get install linux-perf)"
    else:
        record = ["perf", "record", "-q", "-e", "cpu-clock", "-o", str(tmp_path / "p.data"), "--", "true"]
        probe = subprocess.run(record, capture_output=True, check=False)
        if probe.returncode != 0:
            why = "perf cannot record here: " + probe.stderr.decode(errors="replace")[-200:]
    if why is not None:
        if required:
            pytest.fail(why)
        pytest.skip(why)
    out = tmp_path / "native.json"
    run(
        [
            sys.executable, str(ROOT / "benchmarks" / "native.py"), "--workload", "produce", "--mode", "dsm",
            "--rounds", "1", "--messages", "5000", "--top", "5", "--json", str(out), "--", "--bootstrap", bootstrap,
        ],
        timeout=600,
    )  # fmt: skip
    result = json.loads(out.read_text())
    row = result["modes"]["dsm"]
    assert row["bare_samples"] > 100
    assert 0.5 < row["main_over_bare"] < 2.0
    assert 5 == len(row["grew_pct_of_bare"])
    assert any("libpython" in symbol for symbol in row["share_pct"])
