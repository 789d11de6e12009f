"""``benchmarks/experiments``: the experiment modes do the work they are named for, and the bench's
worker processes run them when the directory is on ``PYTHONPATH``."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkahooks import export
from kafkahooks.bench._modes import MODES
from kafkahooks.hooks._records import Request
from tests._benchmarks import run
from tests._drivers import plain_consume

EXPERIMENTS = Path(__file__).resolve().parents[1] / "benchmarks" / "experiments"


@pytest.fixture
def experiments() -> Iterator[Any]:
    """The experiments module, its modes taken out of ``MODES`` again afterwards."""
    before = dict(MODES)
    spec = importlib.util.spec_from_file_location("experiments_bench", EXPERIMENTS / "sitecustomize.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        yield module
    finally:
        MODES.clear()
        MODES.update(before)


def test_footprints_differ_in_what_they_touch_not_in_what_they_do(experiments: Any) -> None:
    """touch-/call-same and -distinct run the same loop over one object or function, or N."""
    many, one = experiments.Toucher(64, True), experiments.Toucher(64, False)
    assert (64, 1) == (len({id(c) for c in many.cells}), len({id(c) for c in one.cells}))
    assert None is many.inject_batch_headers("t", 0, None) is one.inject_batch_headers("t", 0, None)
    assert (sum(range(64)), 64) == (many.total, one.total)
    called, again = experiments.Caller(32, True), experiments.Caller(32, False)
    assert 32 == len({id(f.__code__) for f in called.functions})
    assert 1 == len({id(f.__code__) for f in again.functions})
    called.inject_batch_headers("t", 0, None)
    again.inject_batch_headers("t", 0, None)
    assert (sum(5 + 2 * i for i in range(32)), 32 * 5) == (called.total, again.total)
    assert {f"touch-{k}-{n}" for k in ("same", "distinct") for n in (256, 1024, 4096)} <= set(MODES)
    assert not any(MODES[name].default for name in experiments.EXPERIMENTS)


def test_a_replay_offers_one_produce_request_per_batch(experiments: Any) -> None:
    """Each batch's opening replays one Produce request through the tap into its log (the nolog
    variant: none reaches it), with the batch the request carried walked as the taps walk it."""
    replay, quiet = experiments.Replay(), experiments.Replay(offer=False)
    for _ in range(3):
        assert None is replay.inject_batch_headers("t", 0, None)
        quiet.inject_batch_headers("t", 0, None)
    requests = replay.dispatch.request_log.buffer.drain()
    assert 3 == len(requests) == replay.requests == quiet.requests
    assert all(type(r) is Request and r.key == 0 for r in requests)
    assert {("orders", 0)} == set(requests[0].batches)
    assert 148 == requests[0].batches[("orders", 0)].num_records
    assert {("orders", 0): 42} == requests[0].accepted()
    assert 0 == len(quiet.dispatch.request_log.buffer)


def test_the_warm_loop_drains_a_replays_log_between_loops(experiments: Any) -> None:
    """Timed warm, a replay offers more requests than its log holds (2 048): drained between
    loops, none is refused, so the warm figure never times the refusal path. (The log is taken
    off the export worker first, whose passes would otherwise drain it too.)"""
    replay = experiments.Replay()
    replay.inject_batch_headers("t", 0, None)
    log = replay.dispatch.request_log
    export.worker().unregister(log)
    assert experiments.warm_us(replay, number=1_500, repeats=2) > 0
    assert 2 + 3_000 == replay.requests
    assert 0 == log.dropped


def test_the_experiment_modes_run_in_the_bench_workers(tmp_path: Path, bootstrap: str) -> None:
    """With the directory on PYTHONPATH the command and its worker processes know the modes."""
    cli = Path(sys.executable).with_name("kafkahooks")
    run(
        [
            str(cli), "bench", "--bootstrap", bootstrap, "--client", "aiokafka", "--workload", "produce",
            "--mode", "dsm-no-taps-replay", "--mode", "touch-distinct-256", "--mode", "dsm-drop-all",
            "--rounds", "1", "--messages", "2000",
            "--output", str(tmp_path),
        ],
        env={"PYTHONPATH": str(EXPERIMENTS)},
    )  # fmt: skip
    data = json.loads((tmp_path / "throughput.json").read_text())
    assert all(run["ok"] for run in data["runs"]), [r.get("error") for r in data["runs"] if not r["ok"]]
    assert {"bare", "dsm-no-taps-replay", "touch-distinct-256", "dsm-drop-all"} == {
        row["mode"] for row in data["summary"]
    }


def test_the_drop_experiments_keep_no_hand_out_and_restore_the_log(experiments: Any) -> None:
    """``dsm-drop-handouts`` makes every request log take hand-outs and keep none (finished
    requests too, with ``dsm-drop-all``), and its teardown puts the log back."""
    from kafkahooks.hooks._requests import RequestLog

    for name, requests_dropped in (("dsm-drop-handouts", False), ("dsm-drop-all", True)):
        telemetry = MODES[name].setup("aiokafka", "consumer")
        try:
            log = RequestLog("requests:experiment", [])
            try:
                assert log.offer_other(("t", 0, 1, 0, (1, 0, 0, 0, 0, 0, 0, None)))
                assert 0 == len(log.others)
                assert log.offer(Request(None, 1, 0, 0, True))  # type: ignore[arg-type]
                assert (0 if requests_dropped else 1) == len(log.buffer)
            finally:
                export.worker().unregister(log)
        finally:
            telemetry.close()
        log = RequestLog("requests:experiment", [])
        try:
            assert log.offer_other(("t", 0, 1, 0, (1, 0, 0, 0, 0, 0, 0, None)))
            assert 1 == len(log.others)
        finally:
            export.worker().unregister(log)


def test_hooks_no_fetched_keeps_no_batch_on_fetch_requests_and_restores_the_tap(experiments: Any) -> None:
    """``hooks-no-fetched``: the connection taps made while it is set up keep high watermarks but
    no fetched batch on their Fetch requests (hand-outs still see every batch); its teardown puts
    the taps back, and a tap made then keeps the batches again."""
    from kafka.record.default_records import DefaultRecordBatchBuilder
    from opentelemetry.sdk.metrics import MeterProvider

    from kafkahooks._wire._tap import ConnectionTap
    from kafkahooks.hooks import BrokerMeta
    from kafkahooks.hooks._dispatch import HookDispatcher
    from kafkahooks.metrics import MetricsHooks

    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 20)
    for i in range(3):
        builder.append(i, 1_700_000_000_000 + i, None, b"v", [])
    records = bytes(builder.build())
    meta = BrokerMeta(1, "127.0.0.1", 9092)

    def fetch() -> Request:
        dispatch = HookDispatcher([MetricsHooks(meter_provider=MeterProvider())])
        try:
            tap = ConnectionTap(dispatch, meta)
            req = tap.new_request(1, 0, 100, True)
            tap.fetched(req, "orders", 0, records, high_watermark=10)
            return req
        finally:
            assert dispatch.request_log is not None
            export.worker().unregister(dispatch.request_log)

    telemetry = MODES["hooks-no-fetched"].setup("aiokafka", "consumer")
    try:
        req = fetch()
        assert req.fetched_raw is None
        assert [("orders", 0, 10)] == req.watermarks
    finally:
        telemetry.close()
    req = fetch()
    assert req.fetched_raw is not None
    assert [("orders", 0, 3)] == [(t, p, b[0]) for t, p, b in req.fetched_raw]


def test_acks_by_future_records_each_batch_when_its_future_resolves(
    experiments: Any, bootstrap: str, topic: str
) -> None:
    """``dsm-acks-by-future``: no connection is hooked, and each producer batch's checkpoint
    (weighed by its records) and backlog offset (its last record's) are recorded when the batch's
    future resolves; its teardown puts the batch opening back."""
    import asyncio

    from kafkahooks._wire.aiokafka import _headers
    from kafkahooks.aiokafka import AIOKafkaProducer

    append = _headers._FirstAppend.append
    telemetry = MODES["dsm-acks-by-future"].setup("aiokafka", "producer")
    streams = telemetry.client_kwargs["data_streams"]
    checkpoints: list[int] = []
    backlogs: list[tuple[tuple[str, ...], int]] = []
    streams.record = lambda *args, weight, **kwargs: checkpoints.append(weight)
    streams.backlog = lambda tags, offset: backlogs.append((tags, offset))

    async def produce() -> bool:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, **telemetry.client_kwargs)
        await producer.start()
        try:
            futures = [await producer.send(topic, b"v") for _ in range(5)]
            await asyncio.gather(*futures)
            await asyncio.sleep(0.05)  # the batch future's done callbacks run on the next turn
            conns = producer.client._conns.values()
            return any(getattr(getattr(c.send, "__self__", None), "tap", None) for c in conns)
        finally:
            await producer.stop()

    try:
        hooked = asyncio.run(produce())
    finally:
        telemetry.close()
    assert not hooked
    assert [5] == checkpoints
    assert [(("partition:0", f"topic:{topic}", "type:kafka_produce"), 4)] == backlogs
    assert append is _headers._FirstAppend.append


def test_sticky_open_heads_each_keyless_batch_without_the_probe(
    experiments: Any, bootstrap: str, make_topic: Any
) -> None:
    """``dsm-sticky-open``: a keyless kafka-python producer's batches each get one pathway header,
    on their first record, with no probe installed on the accumulator; its teardown puts the
    adapter's own batch opening back."""

    from kafkahooks._wire.kafka_python import ADAPTER
    from kafkahooks.kafka import KafkaProducer

    topic = make_topic()
    inject = ADAPTER.inject_headers
    telemetry = MODES["dsm-sticky-open"].setup("kafka-python", "producer")
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap, batch_size=2_000, linger_ms=5, **telemetry.client_kwargs)
        probed = "append" in vars(producer._accumulator)
        for _ in range(300):
            producer.send(topic, b"x" * 100)
        producer.flush()
        producer.close()
    finally:
        telemetry.close()
    assert not probed
    records = plain_consume(bootstrap, topic)
    assert 300 == len(records)
    headed = [r.offset for r in records if r.headers]
    assert 300 // 20 <= len(headed) <= 300 // 10  # about 17 records of 100 bytes fit a batch of 2 000
    assert all(len(r.headers) == 1 and r.headers[0][0] == "dd-pathway-ctx-base64" for r in records if r.headers)
    assert ADAPTER.inject_headers == inject
