"""What a mode costs in instructions, not seconds: each side of the benchmark under valgrind's
cachegrind, deterministic where CPU time on a shared machine is not.

Run: ``.venv/bin/python benchmarks/instructions.py --mode dsm --mode hooks`` (needs ``valgrind``,
e.g. Debian's package; about a minute per side and message count). Each side (the bare client and
every mode) runs as the throughput benchmark's own worker process (``kafkahooks.bench._worker``,
one fresh process per side, the same OpenTelemetry SDK set-up) on the embedded broker, twice:
with ``--messages`` and with a third of them. The difference of the two runs is the steady state
(start-up, imports and warm-up cancel out), divided by the messages between them. Reported per
message, and as a ratio to bare: instructions executed (all threads: the event loop, kafkahooks'
export worker, the SDK's), first-level instruction and data cache misses and branch mispredictions
as cachegrind simulates them, and with ``--top N`` the C functions whose instructions grew most
(CPython's eval loop stands for all Python code). A simulated cache is not the machine's: where the
CPU-time ratio of ``kafkahooks bench`` is far above these, the difference is the machine's caches,
branch predictors and neighbours, not more work. Results go to
``benchmarks/results/instructions-CLIENT-WORKLOAD.json`` (``--output``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from kafkahooks.bench._modes import MODES
from kafkahooks.bench._runner import BenchConfig, _fill
from kafkahooks.broker import EmbeddedBroker

EVENTS = {
    "Ir": "instr.",
    "I1mr": "I1 miss",
    "D1mr": "D1 read miss",
    "D1mw": "D1 write miss",
    "Bcm": "cond. mispred.",
    "Bim": "ind. mispred.",
}
"""cachegrind's events reported, and their column titles (misses and mispredictions as simulated)."""


def parse(path: Path) -> tuple[Counter[str], dict[str, Counter[str]]]:
    """A cachegrind output file: its summary by event, and every function's counts by event
    (functions keyed ``file:function``, the file by its base name)."""
    names: list[str] = []
    summary: Counter[str] = Counter()
    functions: dict[str, Counter[str]] = {}
    current: Counter[str] | None = None
    file = "?"
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("events:"):
            names = line.split()[1:]
        elif line.startswith("fl="):
            file = os.path.basename(line[3:])
        elif line.startswith("fn="):
            current = functions.setdefault(f"{file}:{line[3:]}", Counter())
        elif line.startswith("summary:"):
            summary.update(dict(zip(names, map(int, line.split()[1:]), strict=False)))
        elif current is not None and line[:1].isdigit():
            counts = line.split()[1:]
            current.update(dict(zip(names, map(int, counts), strict=False)))
    return summary, functions


def run_side(
    bootstrap: str, admin: Any, args: argparse.Namespace, mode: str, messages: int, source: str | None, out: Path
) -> None:
    """One side's worker under cachegrind, ``messages`` messages, its counts to ``out``."""
    side = "bare" if mode == "bare" else "mode"
    topics = {"bare": source or "", "mode": source or ""}
    if source is None:
        from kafka.admin import NewTopic

        topic = f"instructions-{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(topic, 1, 1)])
        topics = {"bare": topic, "mode": topic}
    chunk = 5000 if args.client == "aiokafka" else 2000
    cfg = {
        "method": "separate", "client": args.client, "workload": args.workload, "mode": mode, "side": side,
        "bootstrap": bootstrap, "topic": topics["bare"], "topics": topics, "messages": messages, "chunk": chunk,
        "value_size": 100, "linger_ms": 5, "batch_bytes": 0, "acks": "1", "compression": None,
        "partitions": 1, "cpus": [],
    }  # fmt: skip
    command = [
        "valgrind", "--tool=cachegrind", "--cache-sim=yes", "--branch-sim=yes", f"--cachegrind-out-file={out}",
        sys.executable, "-m", "kafkahooks.bench._worker", json.dumps(cfg),
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"{mode}: the worker did not start")
    for _ in range(max(1, messages // chunk)):
        proc.stdin.write(f"run {chunk}\n")
        proc.stdin.flush()
        if proc.stdout.readline().strip() != "done":
            raise RuntimeError(f"{mode}: the worker stopped")
    proc.stdin.write("end\n")
    proc.stdin.flush()
    proc.stdout.read()
    if proc.wait(600) != 0:
        raise RuntimeError(f"{mode}: the worker failed")
    if source is None:
        admin.delete_topics([topics["bare"]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", choices=("aiokafka", "kafka-python"), default="aiokafka")
    parser.add_argument("--workload", choices=("produce", "consume-batch", "consume-record"), default="produce")
    parser.add_argument(
        "--mode", action="append", choices=[m for m in MODES if m != "bare"], help="default: dsm and hooks"
    )
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--top", type=int, default=0, help="the N C functions whose instructions grew most per mode")
    parser.add_argument("--output", type=Path, help="default: benchmarks/results/instructions-CLIENT-WORKLOAD.json")
    args = parser.parse_args()
    args.output = args.output or Path(__file__).parent / "results" / f"instructions-{args.client}-{args.workload}.json"
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    modes = ["bare", *(args.mode or ["dsm", "hooks"])]
    small = max(args.messages // 3, 1)
    per_message: dict[str, dict[str, float]] = {}
    grown: dict[str, Counter[str]] = {}
    console = Console(width=None if sys.stdout.isatty() else 140)
    from kafka.admin import KafkaAdminClient

    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        source = None
        if args.workload != "produce":
            source = _fill(
                admin, broker.bootstrap_servers, BenchConfig(messages=args.messages), args.client, args.workload
            )
        for mode in modes:
            counts = []
            for n in (small, args.messages):
                out = Path(tmp) / f"{mode}.{n}.out"
                with console.status(f"{args.client} {args.workload} {mode}: {n} messages under cachegrind"):
                    run_side(broker.bootstrap_servers, admin, args, mode, n, source, out)
                counts.append(parse(out))
            (small_sum, small_fns), (big_sum, big_fns) = counts
            span = args.messages - small
            per_message[mode] = {event: (big_sum[event] - small_sum[event]) / span for event in EVENTS}
            grown[mode] = Counter(
                {fn: (c["Ir"] - small_fns.get(fn, Counter())["Ir"]) / span for fn, c in big_fns.items()}
            )
        admin.close()
    table = Table(
        title=f"{args.client} {args.workload}: per message, steady state ({small} → {args.messages} messages)"
    )
    table.add_column("mode")
    for title in EVENTS.values():
        table.add_column(title, justify="right")
    bare = per_message["bare"]
    for mode in modes:
        row = per_message[mode]
        cells = [f"{row[e]:,.0f}" + ("" if mode == "bare" else f" x{row[e] / bare[e]:.3f}") for e in EVENTS]
        table.add_row(mode, *cells)
    console.print(table)
    over_bare = {}
    for mode in modes[1:]:
        diff = Counter({fn: grown[mode][fn] - grown["bare"].get(fn, 0.0) for fn in grown[mode]})
        over_bare[mode] = dict(diff.most_common(max(args.top, 20)))
        if not args.top:
            continue
        top = Table(title=f"{mode}: instructions per message over bare, by C function")
        top.add_column("function")
        top.add_column("bare", justify="right")
        top.add_column(f"+{mode}", justify="right")
        for fn, extra in diff.most_common(args.top):
            top.add_row(re.sub(r"\s+", " ", fn), f"{grown['bare'].get(fn, 0.0):,.1f}", f"{extra:+,.1f}")
        console.print(top)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "client": args.client, "workload": args.workload, "messages": [small, args.messages],
        "python": sys.version.split()[0], "per_message": per_message,
        "instructions_over_bare_by_function": over_bare,
    }, indent=2) + "\n")  # fmt: skip
    console.print(f"written: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
