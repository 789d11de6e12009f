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
as cachegrind simulates them (the last level too: ``--LL 1048576,8,64`` makes it one core's 1 MiB
second-level cache, so that its misses are the ones that go to the shared third level), and with
``--top N`` the C functions whose instructions grew most
(CPython's eval loop stands for all Python code). A simulated cache is not the machine's: where the
CPU-time ratio of ``kafkahooks bench`` is far above these, the difference is the machine's caches,
branch predictors and neighbours, not more work. Results go to
``benchmarks/results/instructions-CLIENT-WORKLOAD.json`` (``--output``).

The client runs 40 to 170 times slower under valgrind, and some work runs on timers: kafkahooks'
export worker passes every 0.5 s, the SDK exports spans every 5 s and metrics every minute. Left
alone, each such pass would cover that many times fewer messages than at full speed, and its fixed
cost would be charged to each message that many times over (an idle pass of the export worker is
some 800 bytecodes). So the bare client first runs once at full speed, its slowdown under valgrind
is measured, and the mode's timers are stretched by it (``--slowdown`` to set it).

``--by D1mr`` (or another event) ranks the functions by that event instead of instructions: where a
mode's extra cache misses fall (the ``imports`` mode, the bare client beside everything
``tracing="hooks"`` imports, tells the misses that move with the heap's layout alone).

``--threads`` counts each thread apart (callgrind, ``--separate-threads``; slower): the main
thread (aiokafka's event loop, kafka-python's application thread) against all others summed
(kafkahooks' export worker, the SDK's exporters). ``--keep DIR`` keeps valgrind's own files.
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
from typing import Any, NamedTuple

from rich.console import Console
from rich.table import Table

from kafkahooks.bench._modes import MODES
from kafkahooks.bench._runner import BenchConfig, _fill, records_per_batch
from kafkahooks.broker import EmbeddedBroker

EVENTS = {
    "Ir": "instr.",
    "I1mr": "I1 miss",
    "D1mr": "D1 read miss",
    "D1mw": "D1 write miss",
    "ILmr": "LL instr. miss",
    "DLmr": "LL read miss",
    "DLmw": "LL write miss",
    "Bcm": "cond. mispred.",
    "Bim": "ind. mispred.",
}
"""cachegrind's events reported, and their column titles (misses and mispredictions as simulated)."""


def _by_function_key(event: str) -> str:
    """The results' key of the by-function figures for ``event`` (instructions: as before)."""
    return "instructions_over_bare_by_function" if event == "Ir" else f"{event}_over_bare_by_function"


_RECURSION = re.compile(r"'\d+$")


def parse(path: Path) -> tuple[Counter[str], dict[str, Counter[str]]]:
    """A cachegrind output file, or a callgrind one written with ``--compress-strings=no
    --compress-pos=no``: its summary by event, and every function's own counts by event
    (functions keyed ``file:function``, the file by its base name; callgrind's inclusive cost
    lines of calls left out)."""
    names: list[str] = []
    summary: Counter[str] = Counter()
    functions: dict[str, Counter[str]] = {}
    current: Counter[str] | None = None
    file = "?"
    skip_next = False
    for line in path.read_text(errors="replace").splitlines():
        if skip_next:
            skip_next = False
        elif line.startswith("events:"):
            names = line.split()[1:]
        elif line.startswith("fl="):
            file = os.path.basename(line[3:])
        elif line.startswith("fn="):
            # callgrind names a function's recursive activations ``name'2``, ``name'3``: one function.
            current = functions.setdefault(f"{file}:{_RECURSION.sub('', line[3:])}", Counter())
        elif line.startswith("calls="):
            skip_next = True  # the next line is the call's inclusive cost, not this function's own
        elif line.startswith("summary:"):
            summary.update(dict(zip(names, map(int, line.split()[1:]), strict=False)))
        elif current is not None and line[:1].isdigit():
            current.update(dict(zip(names, map(int, line.split()[1:]), strict=False)))
    return summary, functions


Counts = tuple[Counter[str], dict[str, Counter[str]]]
"""A run's (or one thread's) summary by event, and its functions' counts by event."""


class SideRun(NamedTuple):
    """What one side's worker run gave."""

    counts: dict[str, Counts]
    """By part of the process (``all threads``, and with ``--threads`` ``main thread`` and ``other
    threads``); empty at full speed."""
    wall_us_per_message: float
    records_per_request: float | None
    """Produce: the records each request carried, read back from the broker; None otherwise."""


def by_thread(out: Path) -> dict[str, Counts]:
    """callgrind's per-thread files ``out-01``, ``out-02``, ... as the whole process, the main
    thread (aiokafka's event loop, or kafka-python's application thread) and the others summed
    (kafkahooks' export worker, the SDK's threads, the client's own)."""
    files = sorted(out.parent.glob(f"{out.name}-*"), key=lambda f: int(f.name.rsplit("-", 1)[1]))
    if not files:
        raise RuntimeError(f"callgrind wrote no per-thread file for {out}")
    threads = [parse(f) for f in files]
    parts: dict[str, Counts] = {}
    for name, chosen in (("all threads", threads), ("main thread", threads[:1]), ("other threads", threads[1:])):
        summary: Counter[str] = Counter()
        functions: dict[str, Counter[str]] = {}
        for thread_summary, thread_functions in chosen:
            summary.update(thread_summary)
            for fn, counts in thread_functions.items():
                functions.setdefault(fn, Counter()).update(counts)
        parts[name] = (summary, functions)
    return parts


def run_side(
    bootstrap: str, admin: Any, args: argparse.Namespace, mode: str, messages: int, source: str | None, out: Path | None
) -> SideRun:
    """One side's worker under cachegrind (callgrind with ``--threads``), ``messages`` messages:
    its counts by part of the process, its wall time per message, and for produce ``records per
    request`` as the broker stored them (valgrind slows the client 40 to 170 times; this shows
    whether its requests still carry what they do at full speed). ``out`` None: at full speed,
    no counts (to measure the slowdown)."""
    side = "bare" if mode == "bare" else "mode"
    topics = {"bare": source or "", "mode": source or ""}
    if source is None:
        from kafka.admin import NewTopic

        topic = f"instructions-{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(topic, 1, 1)])
        topics = {"bare": topic, "mode": topic}
    chunk = min(messages, 5000 if args.client == "aiokafka" else 2000)
    simulated = out is not None
    cfg = {
        "method": "separate", "client": args.client, "workload": args.workload, "mode": mode, "side": side,
        "bootstrap": bootstrap, "topic": topics["bare"], "topics": topics, "messages": messages, "chunk": chunk,
        "value_size": 100, "linger_ms": 5, "batch_bytes": 0, "acks": "1", "compression": None,
        "partitions": 1, "cpus": [],
    }  # fmt: skip
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = args.hash_seed
    if simulated:
        # Timers stretched by the simulator's slowdown, so that each timed pass (kafkahooks' export
        # worker, the SDK's span and metric exports) covers as many messages as at full speed.
        cfg["export_interval_s"] = 0.5 * args.stretch
        env["OTEL_BSP_SCHEDULE_DELAY"] = str(int(5000 * args.stretch))
        env["OTEL_METRIC_EXPORT_INTERVAL"] = str(int(60_000 * args.stretch))
    if args.threads:
        tool = [
            "--tool=callgrind", "--separate-threads=yes", "--compress-strings=no", "--compress-pos=no",
            f"--callgrind-out-file={out}",
        ]  # fmt: skip
    else:
        tool = ["--tool=cachegrind", f"--cachegrind-out-file={out}"]
    # (``args.LL`` read only when simulating: a run at full speed may be given no such option.)
    caches = ["--cache-sim=yes", "--branch-sim=yes"]
    valgrind = ["valgrind", *tool, *caches, *([f"--LL={args.LL}"] if args.LL else [])] if simulated else []
    command = [*valgrind, sys.executable, "-m", "kafkahooks.bench._worker", json.dumps(cfg)]
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
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
    figures = json.loads(proc.stdout.read().strip().splitlines()[-1])[side]
    if proc.wait(600) != 0:
        raise RuntimeError(f"{mode}: the worker failed")
    counts: dict[str, Counts] = {}
    if out is not None:
        counts = by_thread(out) if args.threads else {"all threads": parse(out)}
    records_per_request = None
    if source is None:
        records_per_request = records_per_batch(bootstrap, topics["bare"])
        admin.delete_topics([topics["bare"]])
    return SideRun(counts, figures["seconds"] / figures["messages"] * 1e6, records_per_request)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", choices=("aiokafka", "kafka-python"), default="aiokafka")
    parser.add_argument("--workload", choices=("produce", "consume-batch", "consume-record"), default="produce")
    parser.add_argument(
        "--mode", action="append", choices=[m for m in MODES if m != "bare"], help="default: dsm and hooks"
    )
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--top", type=int, default=0, help="the N C functions whose instructions grew most per mode")
    parser.add_argument(
        "--by",
        choices=list(EVENTS),
        default="Ir",
        help="the event --top and the by-function figures follow (default Ir, instructions; D1mr, say, "
        "for the first-level data cache's read misses)",
    )
    parser.add_argument(
        "--threads",
        action="store_true",
        help="count each thread apart (callgrind, slower): the main thread against the others",
    )
    parser.add_argument(
        "--LL",
        help="the simulated last-level cache, SIZE,ASSOC,LINE (valgrind's --LL; default: the host's last level, "
        "e.g. 1048576,8,64 for one core's 1 MiB second level)",
    )
    parser.add_argument("--output", type=Path, help="default: benchmarks/results/instructions-CLIENT-WORKLOAD.json")
    parser.add_argument(
        "--slowdown",
        type=float,
        help="how many times slower the client runs under valgrind, to stretch timed passes by "
        "(default: as measured on the bare client, 40 to 170 here)",
    )
    parser.add_argument(
        "--keep", type=Path, help="keep valgrind's own output files here (for callgrind_annotate or cg_annotate)"
    )
    parser.add_argument(
        "--hash-seed",
        default="0",
        help="PYTHONHASHSEED of every counted process (default 0; 'random': a new seed per process). "
        "With random seeds, dict probe lengths and the classes built at import differ from one process to "
        "the next, which moved a mode's count over bare by up to 300 instructions per message",
    )
    args = parser.parse_args()
    suffix = "-threads" if args.threads else ""
    args.output = args.output or (
        Path(__file__).parent / "results" / f"instructions-{args.client}-{args.workload}{suffix}.json"
    )
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    modes = ["bare", *(args.mode or ["dsm", "hooks"])]
    parts = ["all threads", "main thread", "other threads"] if args.threads else ["all threads"]
    small = max(args.messages // 3, 1)
    span = args.messages - small
    per_message: dict[str, dict[str, dict[str, float]]] = {part: {} for part in parts}
    grown: dict[str, dict[str, Counter[str]]] = {part: {} for part in parts}
    records_per_request: dict[str, float] = {}
    console = Console(width=None if sys.stdout.isatty() else 140)
    tool = "callgrind" if args.threads else "cachegrind"
    from kafka.admin import KafkaAdminClient

    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        source = None
        if args.workload != "produce":
            source = _fill(
                admin, broker.bootstrap_servers, BenchConfig(messages=args.messages), args.client, args.workload
            )
        with console.status(f"{args.client} {args.workload} bare: {args.messages} messages at full speed"):
            full_speed = run_side(broker.bootstrap_servers, admin, args, "bare", args.messages, source, None)
        args.stretch = args.slowdown or 100.0
        wall = {"bare at full speed": full_speed.wall_us_per_message}
        for mode in modes:
            runs = []
            for n in (small, args.messages):
                out = Path(tmp) / f"{mode}.{n}.out"
                with console.status(f"{args.client} {args.workload} {mode}: {n} messages under {tool}"):
                    runs.append(run_side(broker.bootstrap_servers, admin, args, mode, n, source, out))
            wall[mode] = runs[1].wall_us_per_message
            if mode == "bare" and args.slowdown is None:  # the bare client has no timed work of note
                args.stretch = wall["bare"] / wall["bare at full speed"]
            if runs[1].records_per_request is not None:
                records_per_request[mode] = runs[1].records_per_request
            for part in parts:
                (small_sum, small_fns), (big_sum, big_fns) = runs[0].counts[part], runs[1].counts[part]
                per_message[part][mode] = {event: (big_sum[event] - small_sum[event]) / span for event in EVENTS}
                grown[part][mode] = Counter(
                    {fn: (c[args.by] - small_fns.get(fn, Counter())[args.by]) / span for fn, c in big_fns.items()}
                )
        admin.close()
    for part in parts:
        title = f"{args.client} {args.workload}, {part}: per message, steady state ({small} → {args.messages} messages)"
        table = Table(title=title)
        table.add_column("mode")
        for event_title in EVENTS.values():
            table.add_column(event_title, justify="right")
        if records_per_request and part == "all threads":
            table.add_column("records / request", justify="right")
        bare = per_message[part]["bare"]
        for mode in modes:
            row = per_message[part][mode]
            # The other threads barely run beside a bare client: their growth reads as a difference.
            show = _difference if part == "other threads" else _ratio
            cells = [f"{row[e]:,.0f}" + ("" if mode == "bare" else show(row[e], bare[e])) for e in EVENTS]
            if records_per_request and part == "all threads":
                cells.append(f"{records_per_request.get(mode, 0.0):.0f}")
            table.add_row(mode, *cells)
        console.print(table)
    over_bare: dict[str, dict[str, dict[str, float]]] = {part: {} for part in parts}
    for part in parts:
        for mode in modes[1:]:
            mine, bare_fns = grown[part][mode], grown[part]["bare"]
            diff = Counter({fn: mine[fn] - bare_fns.get(fn, 0.0) for fn in mine})
            over_bare[part][mode] = dict(diff.most_common(max(args.top, 20)))
            if not args.top:
                continue
            top = Table(title=f"{mode}, {part}: {EVENTS[args.by]} per message over bare, by C function")
            top.add_column("function")
            top.add_column("bare", justify="right")
            top.add_column(f"+{mode}", justify="right")
            for fn, extra in diff.most_common(args.top):
                top.add_row(re.sub(r"\s+", " ", fn), f"{bare_fns.get(fn, 0.0):,.1f}", f"{extra:+,.1f}")
            console.print(top)
    slowdown = wall["bare"] / wall["bare at full speed"]
    console.print(
        f"slowdown under {tool}: {slowdown:.0f}x (bare: {wall['bare']:,.0f} µs per message against "
        f"{wall['bare at full speed']:,.1f} at full speed); timed passes stretched {args.stretch:.0f}x"
    )
    result: dict[str, Any] = {
        "client": args.client, "workload": args.workload, "messages": [small, args.messages],
        "python": sys.version.split()[0], "tool": tool, "hash_seed": args.hash_seed, "by": args.by,
        "per_message": per_message["all threads"],
        _by_function_key(args.by): over_bare["all threads"],
    }  # fmt: skip
    result["slowdown"] = {"measured": slowdown, "timers_stretched": args.stretch, "wall_us_per_message": wall}
    if records_per_request:
        result["records_per_request"] = records_per_request
    if args.threads:
        result["per_message_by_thread"] = {part: per_message[part] for part in parts[1:]}
        result[_by_function_key(args.by) + "_by_thread"] = {part: over_bare[part] for part in parts[1:]}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"written: {args.output}")
    return 0


def _ratio(value: float, bare: float) -> str:
    return f" x{value / bare:.3f}" if bare else _difference(value, bare)


def _difference(value: float, bare: float) -> str:
    return f" {value - bare:+,.0f}"


if __name__ == "__main__":
    sys.exit(main())
