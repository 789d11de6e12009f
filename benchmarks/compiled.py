"""Would compiled code make kafkahooks cheaper? The same package with its hot modules compiled by
mypyc, against itself in pure Python, by the throughput benchmark.

Run: ``.venv/bin/python benchmarks/compiled.py`` (needs a C compiler and Python's headers; mypyc
comes with mypy, in the ``test`` extra; about 6 minutes). It copies the installed package into a
temporary directory, compiles the modules of ``--set`` there with mypyc, checks that a fresh
process imports them compiled, times three per-request steps in a warm loop in each build, then
runs ``kafkahooks bench --client aiokafka --workload produce
--mode dsm --mode hooks --rounds N`` (one fresh process per side, as the benchmark of record)
``--repeats`` times for each build, alternated: the pure package as installed, then the compiled
copy first on ``PYTHONPATH`` (its bench workers inherit it). Both builds' bare sides run the
client alone, so each build's ratios are against the same thing.

Sets:

- ``request``: what runs per request on the event loop (the connection's tap, the batch walk, the
  request record): ``_wire/_tap.py``, ``_wire/_batches.py``, ``hooks/_records.py``, compiled as
  they are.
- ``all`` (the default): ``request`` plus what runs per batch as it opens and per response
  (``_wire/_shared.py``, ``hooks/_dispatch.py``, ``datastreams/_hooks.py``). mypyc refuses an
  interpreted subclass of a compiled class, so the copy's ``AdapterBase``, ``ConnectionTap`` and
  ``DataStreamHooks`` get ``@mypyc_attr(allow_interpreted_subclasses=True)`` first.

Left out on purpose: the aiokafka adapter's connection and batch stand-ins (a ``dict`` and an
``asyncio.Lock`` subclass, a ``__getattr__`` proxy: mypyc compiles none of them as native classes)
and ``export/_buffer.py``, whose compiled build crashed in the garbage collector under the test
suite (mypy 2.4.1). Results: ``--output`` (``compiled.json``, every bench run's summary, and the
runs' own directories).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import kafkahooks

REQUEST = ("_wire/_tap.py", "_wire/_batches.py", "hooks/_records.py")
SETS: dict[str, tuple[str, ...]] = {
    "request": REQUEST,
    "all": (*REQUEST, "_wire/_shared.py", "hooks/_dispatch.py", "datastreams/_hooks.py"),
}
SUBCLASSED = {
    "_wire/_shared.py": ("AdapterBase",),
    "_wire/_tap.py": ("ConnectionTap",),
    "datastreams/_hooks.py": ("DataStreamHooks",),
}
"""Classes that interpreted code subclasses (the adapters, tests, the benchmark's ablations)."""
MODES = ("dsm", "hooks")

WARM = """
import json, timeit
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from kafkahooks._wire import _batches
from kafkahooks._wire._tap import ConnectionTap
from kafkahooks.datastreams import DataStreams
from kafkahooks.datastreams._hooks import DataStreamHooks
from kafkahooks.hooks._dispatch import HookDispatcher
from kafkahooks.hooks._types import BrokerMeta

builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 16384)
for i in range(148):
    builder.append(i, timestamp=None, key=None, value=b"x" * 100, headers=[])
records = bytes(builder.build())
hooks = DataStreamHooks(DataStreams("svc", "env", exporters=[]))
tap = ConnectionTap(HookDispatcher([hooks]), BrokerMeta(1, "127.0.0.1", 9092, None))
topics = [("t", [(0, records)])]

def request():
    r = tap.new_request(0, 1, 16000, True, topics)
    tap.written(r, 16000, 2, 3, None)
    tap._in_flight.clear()

steps = {
    "a Produce request through the tap (record, walk, write)": request,
    "the walk of one 148-record batch": lambda: _batches.produced(records, frozenset(), False),
    "data streams' produce checkpoint": lambda: hooks._produce_checkpoint("t"),
}
print(json.dumps({k: min(timeit.repeat(f, number=20000, repeat=5)) / 20000 * 1e9 for k, f in steps.items()}))
"""
"""Each step's time in a warm loop, ns (the checkpoint mostly within the millisecond it caches)."""


def warm(path: Path | None) -> dict[str, float]:
    """:data:`WARM` in a fresh process, ``path`` first on ``PYTHONPATH``."""
    env = {**os.environ, "PYTHONPATH": str(path)} if path is not None else dict(os.environ)
    out = subprocess.run([sys.executable, "-c", WARM], env=env, capture_output=True, text=True, timeout=300, check=True)
    steps: dict[str, float] = json.loads(out.stdout)
    return steps


def _allow_interpreted_subclasses(path: Path, classes: tuple[str, ...]) -> None:
    source = path.read_text()
    source = source.replace(
        "from __future__ import annotations\n",
        "from __future__ import annotations\n\nfrom mypy_extensions import mypyc_attr\n",
        1,
    )
    for name in classes:
        source, found = re.subn(
            rf"^class {name}\b", f"@mypyc_attr(allow_interpreted_subclasses=True)\nclass {name}", source, flags=re.M
        )
        if found != 1:
            raise SystemExit(f"{path}: class {name} not found once")
    path.write_text(source)


def build(modules: tuple[str, ...], into: Path) -> Path:
    """A copy of the installed package under ``into`` with ``modules`` compiled; returns the
    directory to put first on ``PYTHONPATH``."""
    package = Path(kafkahooks.__file__).parent
    copy = into / "kafkahooks"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for module in modules:
        if module in SUBCLASSED:
            _allow_interpreted_subclasses(copy / module, SUBCLASSED[module])
    mypyc = Path(sys.executable).with_name("mypyc")
    command = [str(mypyc) if mypyc.exists() else "mypyc", *(f"kafkahooks/{m}" for m in modules)]
    done = subprocess.run(command, check=False, cwd=into, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"mypyc failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return into


def compiled_modules(path: Path, modules: tuple[str, ...]) -> dict[str, bool]:
    """Whether a fresh process with ``path`` first on ``PYTHONPATH`` imports each module compiled."""
    names = [f"kafkahooks.{m[:-3].replace('/', '.')}" for m in modules]
    code = (
        "import importlib, json, sys; "
        f"print(json.dumps({{n: importlib.import_module(n).__file__.endswith('.so') for n in {names!r}}}))"
    )
    env = {**os.environ, "PYTHONPATH": str(path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    found: dict[str, bool] = json.loads(out.stdout)
    return found


def bench(path: Path | None, rounds: int, output: Path, extra: list[str]) -> list[dict[str, Any]]:
    """One ``kafkahooks bench`` run of the modes against bare; ``path`` first on ``PYTHONPATH``."""
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = str(path)
    cli = Path(sys.executable).with_name("kafkahooks")
    command = [str(cli), "bench", "--client", "aiokafka", "--workload", "produce", "--rounds", str(rounds)]
    for mode in MODES:
        command += ["--mode", mode]
    done = subprocess.run(
        [*command, *extra, "--output", str(output)], env=env, capture_output=True, text=True, timeout=3600, check=False
    )
    if done.returncode != 0:  # say why, not only that it failed
        raise SystemExit(f"kafkahooks bench failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    summary: list[dict[str, Any]] = json.loads((output / "throughput.json").read_text())["summary"]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=sorted(SETS), default="all", help="Which modules to compile.")
    parser.add_argument("--rounds", type=int, default=8, help="Rounds per bench run.")
    parser.add_argument("--repeats", type=int, default=2, help="Bench runs per build, alternated.")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/compiled"))
    parser.add_argument("--build-only", action="store_true", help="Compile and check the imports, no bench.")
    parser.add_argument("bench_args", nargs="*", help="More options for kafkahooks bench (after --).")
    args = parser.parse_args()
    console = Console()
    modules = SETS[args.set]
    with tempfile.TemporaryDirectory(prefix="kafkahooks-compiled-") as tmp:
        path = build(modules, Path(tmp))
        imported = compiled_modules(path, modules)
        console.print({name: "compiled" if yes else "NOT compiled" for name, yes in imported.items()})
        if not all(imported.values()):
            raise SystemExit("a module was not imported compiled")
        warm_ns = {"pure": warm(None), "compiled": warm(path)}
        steps = Table(title="a warm loop, ns per step")
        for column in ("step", "pure", "compiled"):
            steps.add_column(column)
        for step in warm_ns["pure"]:
            steps.add_row(step, f"{warm_ns['pure'][step]:.0f}", f"{warm_ns['compiled'][step]:.0f}")
        console.print(steps)
        if args.build_only:
            return
        args.output.mkdir(parents=True, exist_ok=True)
        runs: list[dict[str, Any]] = []
        for repeat in range(1, args.repeats + 1):
            for name, where in (("pure", None), ("compiled", path)):
                console.print(f"{name} {repeat}/{args.repeats} ...")
                summary = bench(where, args.rounds, args.output / f"{name}-{repeat}", args.bench_args)
                runs.extend({"build": name, "repeat": repeat, **row} for row in summary if row["mode"] != "bare")
    table = Table(title=f"mypyc ({args.set}) against pure Python: aiokafka produce, ratio to bare")
    for column in ("build", "mode", "CPU / msg", "event loop", "throughput"):
        table.add_column(column)
    medians: dict[str, dict[str, float]] = {}
    for name in ("pure", "compiled"):
        for mode in MODES:
            mine = [r for r in runs if r["build"] == name and r["mode"] == mode]
            figures = {
                key: statistics.median(r[key] for r in mine)
                for key in ("cpu_ratio_to_bare", "main_cpu_ratio_to_bare", "ratio_to_bare")
            }
            medians[f"{name} {mode}"] = figures
            table.add_row(name, mode, *(f"{v:.3f}" for v in figures.values()))
    console.print(table)
    out = {
        "set": args.set,
        "modules": list(modules),
        "rounds": args.rounds,
        "warm_ns": warm_ns,
        "medians": medians,
        "runs": runs,
    }
    (args.output / "compiled.json").write_text(json.dumps(out, indent=1))
    console.print(f"every run: {args.output / 'compiled.json'}")


if __name__ == "__main__":
    main()
