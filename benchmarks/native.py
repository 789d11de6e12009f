"""Where a mode's extra CPU lands in CPython's and the libraries' own C, where a service pays it.

Runs ``kafkahooks bench`` (one fresh process per side, as the benchmark of record does) with every
worker process under ``perf record`` (software ``cpu-clock`` sampling: no hardware counters are
needed), recording only the measured window (the worker writes ``enable``/``disable`` to perf's
control FIFO), then counts the samples per native symbol, per side and thread, and prints, per
mode, the symbols whose share grew the most, in percent of the bare side's application thread::

    python benchmarks/native.py --client aiokafka --workload consume-batch --mode dsm --rounds 4 \\
        --messages 1000000 [--json results/native.json]

Python frames are not resolved (CPython 3.11 has no perf trampoline): what this shows is what the
interpreter and the C libraries did, such as ``_PyObject_Malloc``, ``gc_collect_main`` or
``_PyEval_EvalFrameDefault`` (the bytecode of every Python function). Extra options after ``--``
go to ``kafkahooks bench`` as they are. Needs ``perf`` on the ``PATH``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

_WRAPPER = """#!/bin/sh
# One bench worker under perf: its samples in {dir}/w$$.data, its configuration in {dir}/index.
ctl={dir}/ctl$$
mkfifo "$ctl"
for last; do :; done
printf '%s %s\\n' "$$" "$last" >> {dir}/index
KAFKAHOOKS_BENCH_PROFILE_CONTROL="$ctl" exec perf record -q -D -1 --control "fifo:$ctl" -e cpu-clock \\
    -F {frequency} -o {dir}/w$$.data -- "$@"
"""
_SAMPLE = re.compile(r"^\s*(\d+)\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)$")

Counts = dict[str, collections.Counter[str]]
"""``mode|side|thread`` -> samples per ``dso symbol``."""


def record(bench_args: list[str], frequency: int, workdir: Path) -> None:
    """Run the bench with each worker under perf; the samples land in ``workdir``."""
    wrapper = workdir / "worker.sh"
    wrapper.write_text(_WRAPPER.format(dir=workdir, frequency=frequency))
    wrapper.chmod(0o755)
    env = {**os.environ, "KAFKAHOOKS_BENCH_WRAPPER": str(wrapper)}
    kafkahooks = [sys.executable, "-c", "from kafkahooks.cli import main; main()"]
    subprocess.run([*kafkahooks, "bench", "--output", str(workdir / "bench"), *bench_args], env=env, check=True)


def count(workdir: Path) -> Counts:
    """Samples per symbol, per mode, side and thread (``main``: the process's first thread, where
    the client runs; ``other``: every other thread)."""
    index = {}
    for line in (workdir / "index").read_text().splitlines():
        pid, cfg = line.split(" ", 1)
        index[pid] = json.loads(cfg)
    counts: Counts = collections.defaultdict(collections.Counter)
    for pid, cfg in index.items():
        data = workdir / f"w{pid}.data"
        if not data.exists():
            continue
        script = subprocess.run(
            ["perf", "script", "-i", str(data), "-F", "tid,ip,sym,dso"], capture_output=True, text=True, check=False
        ).stdout
        samples = [m.groups() for m in map(_SAMPLE.match, script.splitlines()) if m]
        if not samples:
            continue
        main = min(int(tid) for tid, _, _ in samples)
        for tid, symbol, dso in samples:
            thread = "main" if int(tid) == main else "other"
            counts[f"{cfg['mode']}|{cfg['side']}|{thread}"][f"{os.path.basename(dso)} {symbol.split('+0x')[0]}"] += 1
    return counts


def summary(counts: Counts, top: int) -> dict[str, dict[str, object]]:
    """Per mode: its application thread's samples over bare's, its other threads' in percent of
    bare's application thread, and the ``top`` symbols whose samples grew the most (same unit)."""
    out: dict[str, dict[str, object]] = {}
    for mode in sorted({key.split("|")[0] for key in counts}):
        bare, main = counts.get(f"{mode}|bare|main"), counts.get(f"{mode}|mode|main")
        if not bare or not main:
            continue
        total = sum(bare.values())
        grew = sorted(set(bare) | set(main), key=lambda s: bare[s] - main[s])
        out[mode] = {
            "bare_samples": total,
            "main_over_bare": sum(main.values()) / total,
            "other_threads_pct": 100 * sum(counts.get(f"{mode}|mode|other", {}).values()) / total,
            "grew_pct_of_bare": {s: round(100 * (main[s] - bare[s]) / total, 3) for s in grew[:top]},
            "share_pct": {s: [round(100 * bare[s] / total, 3), round(100 * main[s] / total, 3)] for s in grew[:top]},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--client", default="aiokafka")
    parser.add_argument("--workload", action="append", required=True)
    parser.add_argument("--mode", action="append", required=True)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--frequency", type=int, default=10_000, help="samples per CPU second (perf -F)")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--json", type=Path, help="write the summary (and the command) here")
    parser.add_argument("--keep", type=Path, help="keep perf's data in this directory")
    args, extra = parser.parse_known_args()
    if shutil.which("perf") is None:
        parser.error("perf is not on the PATH")
    bench_args = [
        "--client",
        args.client,
        *(a for w in args.workload for a in ("--workload", w)),
        *(a for m in args.mode for a in ("--mode", m)),
        "--rounds",
        str(args.rounds),
        "--messages",
        str(args.messages),
        *(a for a in extra if a != "--"),
    ]
    workdir = Path(tempfile.mkdtemp(prefix="kafkahooks-native-")) if args.keep is None else args.keep
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        record(bench_args, args.frequency, workdir)
        result = summary(count(workdir), args.top)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    console = Console()
    for mode, row in result.items():
        table = Table(
            title=f"{mode}: application thread x{row['main_over_bare']:.4f} of bare's samples, "
            f"other threads {row['other_threads_pct']:.2f}% of it"
        )
        table.add_column("symbol")
        table.add_column("bare %", justify="right")
        table.add_column("mode %", justify="right")
        table.add_column("grew, % of bare", justify="right")
        shares: dict[str, list[float]] = row["share_pct"]  # type: ignore[assignment]
        for symbol, grew in row["grew_pct_of_bare"].items():  # type: ignore[attr-defined]
            table.add_row(symbol, f"{shares[symbol][0]:.2f}", f"{shares[symbol][1]:.2f}", f"{grew:+.2f}")
        console.print(table)
    if args.json is not None:
        args.json.write_text(json.dumps({"command": sys.argv, "bench_args": bench_args, "modes": result}, indent=1))


if __name__ == "__main__":
    main()
