"""Experiment modes for ``kafkahooks bench``: what work costs *where kafkahooks runs it*, against
what it costs in a warm loop (benchmarks/NOTES.md, *What the event loop charges for work*).

Run with this directory first on ``PYTHONPATH``, which the bench's worker processes inherit, so
that every process registers the modes before it reads its command line::

    PYTHONPATH=benchmarks/experiments .venv/bin/kafkahooks bench --client aiokafka --workload produce \\
        --mode inject-none --mode touch-same-1024 --mode touch-distinct-1024 --rounds 8

They are experiments, not kafkahooks' modes: each is a batch header injector (as the ``inject-none``
floor is) that adds nothing and does fixed work as each producer batch opens, on the event loop:

- ``touch-same-N`` / ``touch-distinct-N``: read one attribute of N objects, the same object N
  times or N distinct ones (112 bytes each, so one or two cache lines apiece): the same
  instructions, a different data footprint.
- ``call-same-N`` / ``call-distinct-N``: call N functions, the same one N times or N distinct
  ones (each its own code object, compiled apart): the same instructions, a different code
  footprint.
- ``dsm-no-taps-replay``: data streams without the connection taps (``dsm-no-taps``), plus one
  Produce request's work through a connection tap of its own (the request's record and walk, its
  write, read, acknowledgement and end, one offer to a request log whose data-streams plugin the
  export worker runs), replayed at each batch's opening: the taps' core work moved from the
  client's four entry points (send, write, read, decode) to one. ``dsm-no-taps-replay-nolog``: the
  same without the offer (the request dies at once). ``dsm-no-taps-idle``: the replaying hook
  doing nothing.

Two more measure what a consumer's hand-outs cost by how long they live (benchmarks/NOTES.md, *A consumer's
batches in the allocator*): ``dsm-drop-handouts`` is data streams with each hand-out dropped as
it is offered to the request log, instead of waiting for the export worker's pass (the hand-out
and what it alone holds, its batch's record and the plugins' tokens, die at once; no consume
checkpoint or consumed-records count is made of it); ``dsm-drop-all`` drops finished requests too.
Everything on the event loop runs as in ``dsm`` up to the offer.
``hooks-no-fetched`` is ``tracing="hooks"`` whose connection taps keep no fetched batch on their
Fetch requests (high watermarks and hand-outs as before; the poll spans, metrics and lag then see
no batch): what keeping every batch's record until the worker's pass costs, at most.
``dsm-acks-by-future`` (aiokafka) is ``dsm`` without the connection taps, each producer batch's
checkpoint and backlog offset recorded by a done callback on the batch's own future: what a
second acknowledgement path for data streams alone would save against the taps.

``dsm-sticky-open`` (kafka-python) is ``dsm`` whose producers' batches are opened without the
per-record probe on ``RecordAccumulator.append``, through KIP-480's sticky path (keyless sends
only): what that probe costs a producer.

``warm_us(injector)`` times a mode's injection in a warm loop, for the ratio in place / warm.
"""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import Callable
from typing import Any

from kafkahooks.bench._ablations import Injector, _set, without
from kafkahooks.bench._modes import MODES, Mode, Telemetry


class _Cell:
    __slots__ = ("a", "b", "c", "d", "e", "f", "g", "h", "v", "w")

    v: int


class Toucher(Injector):
    """Reads ``cell.v`` of ``n`` cells per batch: ``n`` distinct cells, or one cell ``n`` times."""

    def __init__(self, n: int, distinct: bool) -> None:
        super().__init__(None)
        if distinct:
            cells = []
            for i in range(n):
                cell = _Cell()
                cell.v = i
                cells.append(cell)
        else:
            cell = _Cell()
            cell.v = 1
            cells = [cell] * n
        self.cells = tuple(cells)
        self.total = 0

    def inject_batch_headers(
        self, topic: str, partition: int, headers: Any, timestamp_ms: int = -1
    ) -> list[tuple[str, bytes]] | None:
        total = 0
        for cell in self.cells:
            total += cell.v
        self.total = total
        return None


def functions(n: int, distinct: bool) -> tuple[Callable[[int], int], ...]:
    """``n`` functions of three lines: one function ``n`` times, or ``n`` compiled apart."""
    if not distinct:
        namespace: dict[str, Any] = {}
        exec("def f(x):\n    y = x + 1\n    return y * 2 - x\n", namespace)
        return (namespace["f"],) * n
    out = []
    for i in range(n):
        namespace = {}
        exec(f"def f{i}(x):\n    y = x + {i + 1}\n    return y * 2 - x\n", namespace)
        out.append(namespace[f"f{i}"])
    return tuple(out)


class Caller(Injector):
    """Calls ``n`` functions per batch: ``n`` distinct ones, or one ``n`` times."""

    def __init__(self, n: int, distinct: bool) -> None:
        super().__init__(None)
        self.functions = functions(n, distinct)
        self.total = 0

    def inject_batch_headers(
        self, topic: str, partition: int, headers: Any, timestamp_ms: int = -1
    ) -> list[tuple[str, bytes]] | None:
        total = 0
        for f in self.functions:
            total += f(3)
        self.total = total
        return None


class Replay(Injector):
    """One Produce request's life through a connection tap of its own, at each batch's opening
    (``work`` False: nothing); ``offer`` False: the finished request is not offered to the log."""

    def __init__(self, work: bool = True, offer: bool = True) -> None:
        super().__init__(None)
        self.work = work
        self.offer = offer
        self.tap: Any = None
        self.records = b""
        self.requests = 0

    def _build(self) -> None:
        from aiokafka.record.default_records import DefaultRecordBatchBuilder

        from kafkahooks._wire import aiokafka as _aiokafka
        from kafkahooks._wire._tap import ConnectionTap
        from kafkahooks.datastreams import DataStreams, data_stream_hooks
        from kafkahooks.hooks import BrokerMeta, HookDispatcher

        builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 16384)
        now = int(time.time() * 1000)
        for i in range(148):  # what the bench's producer puts in a request
            builder.append(i, timestamp=now, key=None, value=b"x" * 100, headers=[])
        self.records = bytes(builder.build())
        self.streams = DataStreams("replay", "bench", exporters=[])
        self.dispatch = HookDispatcher([data_stream_hooks(self.streams)], name="replay")
        self.tap = ConnectionTap(self.dispatch, BrokerMeta(1, "127.0.0.1", 9092), None, _aiokafka.first_headers)
        if not self.offer:
            self.tap.log_keys = frozenset()

    def inject_batch_headers(
        self, topic: str, partition: int, headers: Any, timestamp_ms: int = -1
    ) -> list[tuple[str, bytes]] | None:
        if self.tap is None:
            self._build()
        if self.work:
            tap = self.tap
            now = time.monotonic_ns()
            req = tap.new_request(0, now, 0, True, [("orders", [(0, self.records)])])
            tap.written(req, len(self.records) + 80, now + 1_000, now + 30_000, None)
            req = tap.frame_read(60, now + 500_000)
            tap.produce_acked(req, [("orders", 0, 0, 42)])
            tap.decoded(req, 0)
            self.requests += 1
        return None


def _injecting(make: Callable[[], Injector]) -> Callable[[str, str], Telemetry]:
    def setup(client: str, role: str) -> Telemetry:
        return Telemetry(wrapped=True, client_kwargs={"tracing": "off", "hooks": [make()]})

    return setup


def _replaying(make: Callable[[], Replay]) -> Callable[[str, str], Telemetry]:
    def setup(client: str, role: str) -> Telemetry:
        telemetry = without("taps", MODES["dsm"].setup, client, role)
        hooks = [*telemetry.client_kwargs.get("hooks", []), make()]
        telemetry.client_kwargs = {**telemetry.client_kwargs, "hooks": hooks}
        return telemetry

    return setup


EXPERIMENTS: dict[str, tuple[str, Callable[[], Injector], bool]] = {}
"""name -> (what it does, its injector, whether it rides on ``dsm-no-taps``)."""
_FOOTPRINTS: tuple[tuple[str, tuple[int, ...], type[Toucher | Caller], str, str], ...] = (
    ("touch", (256, 1024, 4096), Toucher, "reading {n} distinct objects", "reading {n} times one object"),
    ("call", (256, 1024), Caller, "calling {n} distinct functions", "calling {n} times one function"),
)
for _kind, _sizes, _class, _many, _one in _FOOTPRINTS:
    for _n in _sizes:
        for _distinct in (False, True):
            EXPERIMENTS[f"{_kind}-{'distinct' if _distinct else 'same'}-{_n}"] = (
                f"an injector {(_many if _distinct else _one).format(n=_n)} per batch",
                functools.partial(_class, _n, _distinct),
                False,
            )
EXPERIMENTS["dsm-no-taps-idle"] = ("dsm-no-taps and a replaying hook that does nothing", lambda: Replay(False), True)
EXPERIMENTS["dsm-no-taps-replay"] = ("dsm-no-taps, a Produce request's tap work at each batch", Replay, True)
EXPERIMENTS["dsm-no-taps-replay-nolog"] = (
    "dsm-no-taps-replay without the offer to the request log",
    lambda: Replay(offer=False),
    True,
)

for _name, (_what, _make, _on_dsm) in EXPERIMENTS.items():
    _setup = _replaying(_make) if _on_dsm else _injecting(_make)  # type: ignore[arg-type]
    MODES[_name] = Mode(_name, f"{_what} (an experiment)", _setup, default=False)


def _accept(item: Any) -> bool:
    return True


def _undone_at_teardown(telemetry: Telemetry, undo: Callable[[], None]) -> Telemetry:
    """``telemetry`` whose teardown runs ``undo`` first, then its own."""
    teardown = telemetry.teardown

    def restore() -> None:
        undo()
        if teardown is not None:
            teardown()

    telemetry.teardown = restore
    return telemetry


def _after_init(base: str, load: Callable[[], type], tweak: Callable[[Any], None]) -> Callable[[str, str], Telemetry]:
    """Mode ``base`` in which every instance of the class ``load()`` gives is changed by ``tweak``
    once built, until the mode's teardown."""

    def setup(client: str, role: str) -> Telemetry:
        cls = load()
        init = cls.__init__  # type: ignore[misc]

        def tweaked(self: Any, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **kwargs)
            tweak(self)

        cls.__init__ = tweaked  # type: ignore[misc]

        def restore() -> None:
            cls.__init__ = init  # type: ignore[misc]

        return _undone_at_teardown(MODES[base].setup(client, role), restore)

    return setup


def _request_log() -> type:
    from kafkahooks.hooks._requests import RequestLog

    return RequestLog


def _dropping(requests: bool) -> Callable[[str, str], Telemetry]:
    """``dsm`` whose request logs take each hand-out (and finished request) and keep nothing."""

    def drop(log: Any) -> None:
        log.offer_other = _accept
        if requests:
            log.offer = _accept

    return _after_init("dsm", _request_log, drop)


MODES["dsm-drop-handouts"] = Mode(
    "dsm-drop-handouts", "dsm, each hand-out dropped as it is offered (an experiment)", _dropping(False), default=False
)
MODES["dsm-drop-all"] = Mode(
    "dsm-drop-all",
    "dsm, hand-outs and finished requests dropped as offered (an experiment)",
    _dropping(True),
    default=False,
)


def _connection_tap() -> type:
    from kafkahooks._wire._tap import ConnectionTap

    return ConnectionTap


def _keep_no_fetched(tap: Any) -> None:
    tap.log_fetch_batches = False


def _no_fetched(base: str) -> Callable[[str, str], Telemetry]:
    """``base`` whose connection taps keep no fetched batch on their Fetch requests (high
    watermarks still): the ceiling of what keeping them until the export worker's pass costs."""
    return _after_init(base, _connection_tap, _keep_no_fetched)


MODES["hooks-no-fetched"] = Mode(
    "hooks-no-fetched",
    'tracing="hooks", no fetched batch kept on Fetch requests (an experiment)',
    _no_fetched("hooks"),
    default=False,
)


class _Acked:
    """A producer batch's done callback: its produce checkpoint and backlog offset, as data
    streams' ``on_requests_finished`` records them for an acknowledged Produce partition. Holds
    the batch weakly (its future holds this until it resolves)."""

    __slots__ = ("batch", "hooks", "partition", "timestamp_ms", "topic")

    def __init__(self, hooks: Any, batch: Any, topic: str, partition: int, timestamp_ms: int) -> None:
        self.hooks = hooks
        self.batch = weakref.ref(batch)
        self.topic = topic
        self.partition = partition
        self.timestamp_ms = timestamp_ms

    def __call__(self, future: Any) -> None:
        try:
            if future.cancelled() or future.exception() is not None:
                return
            batch = self.batch()
            count = batch.record_count if batch is not None else 0
            hooks = self.hooks
            pending = hooks._opened.take(self.topic, self.partition, self.timestamp_ms)
            if pending is not None:
                tags, h, parent_hash, edge_ms, pathway_ms, at_ns = pending
                hooks.streams.record(tags, h, parent_hash, edge_ms, pathway_ms, weight=count, at_ns=at_ns)
            offset = future.result().offset
            if offset >= 0:
                backlog = hooks._backlog_tags.get((self.topic, self.partition))
                if backlog is None:
                    backlog = hooks._backlog_tags[(self.topic, self.partition)] = (
                        f"partition:{self.partition}",
                        f"topic:{self.topic}",
                        "type:kafka_produce",
                    )
                hooks.streams.backlog(backlog, offset + count - 1)
        except Exception:  # an experiment: never the client's problem
            pass


def _acks_by_future(client: str, role: str) -> Telemetry:
    """``dsm`` without the connection taps, each aiokafka producer batch's acknowledgement taken
    from its own future instead (a done callback per batch: its checkpoint and backlog offset)."""
    from kafkahooks._wire.aiokafka import _headers
    from kafkahooks.datastreams._hooks import DataStreamHooks

    telemetry = without("taps", MODES["dsm"].setup, client, role)
    with_batch_headers = vars(_headers)["with_batch_headers"]
    append = _headers._FirstAppend.append
    last: list[Any] = [-1]

    def noting(dispatch: Any, topic: str, partition: int, headers: Any, timestamp_ms: Any) -> Any:
        out = with_batch_headers(dispatch, topic, partition, headers, timestamp_ms)
        last[0] = out[2]
        return out

    def appending(self: Any, offset: Any, timestamp: Any, key: Any, value: Any, headers: Any) -> Any:
        pending = self._pending
        metadata = append(self, offset, timestamp, key, value, headers)
        if pending is not None:
            _, batch, tp, injection = pending
            hooks = next((h for h in injection.dispatch.hooks if isinstance(h, DataStreamHooks)), None)
            if hooks is not None and type(last[0]) is int:
                batch.future.add_done_callback(_Acked(hooks, batch, tp.topic, tp.partition, last[0]))
        return metadata

    _headers.with_batch_headers = noting  # type: ignore[attr-defined]
    _headers._FirstAppend.append = appending  # type: ignore[method-assign]

    def restore() -> None:
        _headers.with_batch_headers = with_batch_headers  # type: ignore[attr-defined]
        _headers._FirstAppend.append = append  # type: ignore[method-assign]

    return _undone_at_teardown(telemetry, restore)


MODES["dsm-acks-by-future"] = Mode(
    "dsm-acks-by-future",
    "dsm without the taps, each producer batch acknowledged by its future (an experiment, aiokafka)",
    _acks_by_future,
    default=False,
)


def _sticky_opening(producer: Any, dispatch: Any) -> None:
    """kafka-python batch headers without the per-record probe, for keyless sends only: the
    producer's partitioner (its default one, shared by every producer, replaced by an instance of
    a subclass of this producer's own) arms a one-shot ``append`` when KIP-480's sticky path tells
    it a new batch is about to open; that ``append`` probes, injects and disarms. Keyed and
    explicit-partition sends, and a refusal of headers, are not handled: an experiment."""
    from kafka.partitioner.default import DefaultPartitioner

    from kafkahooks._wire._shared import with_batch_headers
    from kafkahooks._wire.kafka_python._headers import _mark_injected

    accumulator = producer._accumulator
    if type(producer.config["partitioner"]) is not DefaultPartitioner:
        return
    original = type(accumulator).append

    def once(
        tp: Any,
        timestamp_ms: Any,
        key: Any,
        value: Any,
        headers: Any,
        now: Any = None,
        abort_on_new_batch: bool = False,
    ) -> Any:
        del accumulator.append
        result = original(accumulator, tp, timestamp_ms, key, value, headers, now, True)
        if not result[3] or abort_on_new_batch:
            return result
        headers, injected, timestamp_ms = with_batch_headers(dispatch, tp.topic, tp.partition, headers, timestamp_ms)
        result = original(accumulator, tp, timestamp_ms, key, value, headers, now, False)
        if injected:
            _mark_injected(accumulator, tp, result[0], injected)
        return result

    class Arming(DefaultPartitioner):  # type: ignore[misc]  # kafka-python ships no types
        def on_new_batch(self, topic: str, cluster: Any, prev_partition: int) -> None:
            accumulator.append = once

    producer.config["partitioner"] = Arming()


def _sticky(client: str, role: str) -> Telemetry:
    """``dsm`` whose kafka-python producers get batch headers through :func:`_sticky_opening`."""
    from kafkahooks._wire.kafka_python import ADAPTER

    telemetry = MODES["dsm"].setup(client, role)
    return _undone_at_teardown(telemetry, _set(ADAPTER, "inject_headers", _sticky_opening))


MODES["dsm-sticky-open"] = Mode(
    "dsm-sticky-open",
    "dsm, kafka-python batches opened through the sticky path's on_new_batch, no per-record probe "
    "(an experiment, keyless sends only)",
    _sticky,
    default=False,
)


def warm_us(injector: Injector, number: int = 1_000, repeats: int = 7) -> float:
    """A mode's injection per batch in a warm loop, µs (the fastest of ``repeats`` loops; a
    replaying injector's log is drained between loops, so no offer is ever refused)."""
    inject = injector.inject_batch_headers
    inject("orders", 0, None, -1)  # built, specialized
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            inject("orders", 0, None, -1)
        best = min(best, time.perf_counter() - start)
        log = getattr(getattr(injector, "tap", None), "log", None)
        if log is not None:
            log.buffer.drain()
    return best / number * 1e6


if __name__ == "__main__":
    for _name in EXPERIMENTS:
        print(f"{_name:28s} {warm_us(EXPERIMENTS[_name][1]()):8.2f} µs per batch, warm")
