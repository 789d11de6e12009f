"""The flight recorder and the latency breakdown: verdicts on constructed dumps whose answer is
known, then a real client against a broker whose Produce responses a proxy holds back."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkahooks import FlightRecorder
from kafkahooks.latency import FIELDS, SCHEMA, breakdown, load
from tests._proxy import FrameProxy

MS = 1_000_000


def row(
    key: str = "Produce",
    broker: int = 1,
    *,
    ww: int = 0,
    ttw: int = 0,
    rw: int = 0,
    ttr: int = 0,
    records: int = 10,
    error: str | None = None,
    i: int = 0,
) -> dict[str, Any]:
    return {
        "end_ns": 1_700_000_000_000_000_000 + i * MS,
        "client_id": "svc",
        "role": "producer" if key == "Produce" else "consumer",
        "key": key,
        "broker": broker,
        "host": "127.0.0.1",
        "port": 9090 + broker,
        "write_wait_ns": ww,
        "time_to_write_ns": ttw,
        "read_wait_ns": rw,
        "time_to_read_ns": ttr,
        "bytes_written": 1_000,
        "bytes_read": 100,
        "partitions": 1,
        "records": records,
        "error": error,
    }


def verdict_of(rows: list[dict[str, Any]], key: str, broker: int) -> str:
    found = [g for g in breakdown(rows).groups if g.key == key and g.broker == broker]
    assert len(found) == 1
    return found[0].verdict


def test_write_wait_in_the_slow_tail_says_the_client_queues() -> None:
    rows = [row(ww=1 * MS, ttw=100_000, ttr=2 * MS, i=i) for i in range(95)]
    rows += [row(ww=40 * MS, ttw=100_000, ttr=3 * MS, i=100 + i) for i in range(5)]
    verdict = verdict_of(rows, "Produce", 1)
    assert "write wait" in verdict
    assert "max_in_flight_requests_per_connection" in verdict
    assert verdict.startswith("9")  # the share: 90%+ of the tail


def test_one_slow_broker_among_several_is_named() -> None:
    rows = []
    for broker, ttr in ((1, 2 * MS), (2, 20 * MS), (3, 2 * MS)):
        rows += [row("Fetch", broker, ttr=ttr + (i % 7) * 10_000, i=i) for i in range(50)]
    slow = verdict_of(rows, "Fetch", 2)
    assert "time to read" in slow
    assert "this broker" in slow
    assert "9.7x" in slow
    assert verdict_of(rows, "Fetch", 1).startswith("nothing stands out")


def test_time_to_read_on_every_broker_blames_the_cluster_not_one_broker() -> None:
    rows = []
    for broker in (1, 2, 3):
        rows += [row("Produce", broker, ttr=30 * MS + broker * 100_000, i=i) for i in range(30)]
    assert "the cluster, not one broker" in verdict_of(rows, "Produce", 2)


def test_read_wait_on_many_requests_is_head_of_line_blocking() -> None:
    rows = [row(ttr=8 * MS, rw=(6 * MS if i % 5 < 2 else 0), i=i) for i in range(100)]
    verdict = verdict_of(rows, "Produce", 1)
    assert verdict.startswith("responses queue behind a slow one on the same connection: 40%")


def test_slow_writes_are_named_with_the_request_size() -> None:
    rows = [row(ttw=20 * MS, ttr=1 * MS, i=i) for i in range(30)]
    verdict = verdict_of(rows, "Produce", 1)
    assert "time to write" in verdict
    assert "1 KB on average" in verdict


def test_fast_groups_and_small_groups() -> None:
    assert verdict_of([row(ttr=MS, i=i) for i in range(30)], "Produce", 1).startswith("nothing stands out")
    assert verdict_of([row(ttr=50 * MS, i=i) for i in range(5)], "Produce", 1).startswith("too few requests")


def test_empty_long_polls_are_counted_but_not_timed_and_errors_reported() -> None:
    rows = [row("Fetch", ttr=500 * MS, records=0, i=i) for i in range(200)]
    rows += [row("Fetch", ttr=MS, i=300 + i) for i in range(30)]
    rows += [row("Fetch", ttr=MS, records=0, error="ConnectionClosed", i=400)]
    rows += [row("Fetch", ttr=300 * MS, records=0, error="ClientClosed", i=401)]
    result = breakdown(rows)
    (group,) = result.groups
    assert (232, 201) == (group.requests, group.empty)
    assert group.timings["total_ns"].max == MS  # the 500 ms empty polls are not in the timings
    assert group.verdict.startswith("nothing stands out")
    assert "1 of 232 requests failed (1 ConnectionClosed)" in group.verdict
    assert all(r["records"] or r["error"] for r in result.slowest)


def test_load_skips_what_is_not_a_request(tmp_path: Path) -> None:
    dump = tmp_path / "d.jsonl"
    lines = [json.dumps({"schema": SCHEMA, "version": 1}), json.dumps(row()), "{cut sho", json.dumps({"a": 1}), "[]"]
    dump.write_text("\n".join(lines) + "\n")
    rows, skipped = load([dump])
    assert (1, 3) == (len(rows), skipped)


def kafkahooks_command() -> list[str]:
    """The ``kafkahooks`` script of the environment running the tests, as a user runs it."""
    script = Path(sys.executable).with_name("kafkahooks")
    found = str(script) if script.exists() else shutil.which("kafkahooks")
    assert found, "the kafkahooks command is not installed in this environment"
    return [found]


def test_the_command_prints_verdicts_and_json(tmp_path: Path) -> None:
    dump = tmp_path / "d.jsonl"
    rows = [row(ww=1 * MS, ttr=2 * MS, i=i) for i in range(95)] + [row(ww=40 * MS, i=100 + i) for i in range(5)]
    dump.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**os.environ, "COLUMNS": "200"}
    text = subprocess.run(
        [*kafkahooks_command(), "latency", str(dump)], check=False, capture_output=True, text=True, env=env
    )
    assert 0 == text.returncode, text.stderr
    assert "Produce to broker 1 (127.0.0.1:9091), svc (producer):" in text.stdout
    assert "the client queues requests" in text.stdout
    assert "slowest requests" in text.stdout
    out = subprocess.run(
        [*kafkahooks_command(), "latency", "--json", "--slowest", "3", str(dump)],
        check=False,
        capture_output=True,
        text=True,
    )
    data = json.loads(out.stdout)
    assert 100 == data["requests"]
    assert 3 == len(data["slowest"])
    assert "write wait" in data["groups"][0]["verdict"]
    missing = subprocess.run(
        [*kafkahooks_command(), "latency", str(tmp_path / "none")], check=False, capture_output=True, text=True
    )
    assert 0 != missing.returncode
    assert "Traceback" not in missing.stderr


@pytest.fixture
def slow_produce(proxied: tuple[str, FrameProxy]) -> Iterator[tuple[str, FrameProxy]]:
    """The proxied broker, holding every Produce response back 30 ms."""
    bootstrap, proxy = proxied
    proxy.response_delays = {0: 0.03}
    yield bootstrap, proxy
    proxy.response_delays = {}


CANARY = b"RECORDER-CANARY-9f2c"


def test_a_recorder_names_the_slow_broker_and_keeps_no_record_bytes(
    slow_produce: tuple[str, FrameProxy], make_topic: Callable[..., str], tmp_path: Path
) -> None:
    """A producer behind a broker whose Produce responses take 30 ms more: the dump holds its
    requests (fields as documented, nothing of the records' headers or values), the verdict says
    time to read (the broker or the path to it), and a small recorder keeps only its capacity."""
    from kafkahooks.aiokafka import AIOKafkaProducer

    bootstrap, _ = slow_produce
    topic = make_topic(1)
    # 31 sends into a ring of 30: the first Produce, which may wait for its connection (write
    # wait, once), is pushed out with the set-up requests, and the verdict is about the broker.
    recorder, small = FlightRecorder(capacity=30), FlightRecorder(capacity=5)

    async def run(hooks: list[Any], count: int) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="slow-svc", hooks=hooks)
        await producer.start()
        for _i in range(count):
            await producer.send_and_wait(topic, CANARY + b"-value", key=CANARY, headers=[("h", CANARY)])
        await producer.stop()

    asyncio.run(run([recorder], 31))
    asyncio.run(run([small], 10))
    path = recorder.dump(tmp_path / "slow-{pid}.jsonl")
    assert path.name == f"slow-{os.getpid()}.jsonl"
    text = path.read_bytes()
    assert CANARY not in text
    header, *lines = [json.loads(line) for line in text.splitlines()]
    assert (SCHEMA, 1, "slow-svc", "producer") == (
        header["schema"],
        header["version"],
        header["client_id"],
        header["role"],
    )
    assert header["kept"] == len(lines) == 30 < recorder.recorded
    assert all(tuple(line) == FIELDS for line in lines)
    produced = [line for line in lines if line["key"] == "Produce"]
    assert 30 == len(produced) == sum(line["records"] for line in produced)
    assert all(line["time_to_read_ns"] >= 30 * MS for line in produced)
    result = recorder.breakdown()
    (group,) = [g for g in result.groups if g.key == "Produce"]
    assert "of p99 is time to read — the broker or the path to it" in group.verdict, group.verdict
    assert len(small) == 5
    assert small.recorded > 5


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="POSIX signals only")
def test_a_signal_dumps_the_recorder(tmp_path: Path) -> None:
    """``dump_on_signal``: ``kill -USR1`` writes the dump on a thread of its own, and a handler
    installed before is still called."""
    import time

    from kafkahooks.hooks import BrokerMeta
    from kafkahooks.hooks._records import Request

    recorder = FlightRecorder()
    r = Request(BrokerMeta(3, "127.0.0.1", 9093), 3, 0, 64, True)
    r.time_to_read_ns, r.read_end_ns = 2 * MS, 5 * MS
    recorder.on_requests_finished([r])
    calls: list[int] = []
    before = signal.signal(signal.SIGUSR1, lambda sig, frame: calls.append(sig))
    try:
        recorder.dump_on_signal(tmp_path / "on-signal-{pid}.jsonl")
        os.kill(os.getpid(), signal.SIGUSR1)
        target = tmp_path / f"on-signal-{os.getpid()}.jsonl"
        deadline = time.monotonic() + 10
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = [json.loads(line) for line in target.read_text().splitlines()]
    finally:
        signal.signal(signal.SIGUSR1, before)
    assert [signal.SIGUSR1] == calls
    assert 2 == len(lines)
    assert ("Metadata", 3, 2 * MS) == (lines[1]["key"], lines[1]["broker"], lines[1]["time_to_read_ns"])


def test_a_full_ring_is_small_and_untracked_by_the_collector() -> None:
    """10 000 requests through a recorder: well under 0.4 KB each (200 bytes measured), and no
    ring entry tracked by the garbage collector (numbers and strings only), so a full ring adds
    nothing to the client's collections."""
    import gc
    import tracemalloc

    from kafkahooks.hooks import BrokerMeta, Compression
    from kafkahooks.hooks._records import BatchInfo, Request

    meta = BrokerMeta(1, "127.0.0.1", 9092)
    requests = []
    for i in range(10_000):
        r = Request(meta, 0, i, 200, True)
        r.write_end_ns = r.read_end_ns = 10**12 + i * 1_000
        r.write_wait_ns, r.time_to_read_ns, r.bytes_written = 5_000 + i, 123_456 + i, 300 + i
        r.batches = {("t", i % 8): BatchInfo(100, 10_000, 10_000, Compression.NONE, i, i + 99, 0, ())}
        requests.append(r)
    recorder = FlightRecorder()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for first in range(0, 10_000, 100):
            recorder.on_requests_finished(requests[first : first + 100])
        per_request = (tracemalloc.get_traced_memory()[0] - before) / 10_000
    finally:
        tracemalloc.stop()
    gc.collect()
    assert 10_000 == len(recorder)
    assert per_request < 400, per_request
    assert 0 == sum(1 for entry in recorder._ring if gc.is_tracked(entry))
