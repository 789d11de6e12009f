"""The dispatcher and the key filter, without a network."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from structlog.testing import capture_logs

from kafkahooks.hooks import (
    TRACING_KEYS,
    ApiKey,
    BrokerE2E,
    BrokerMeta,
    HookDispatcher,
    KeyFilter,
)
from kafkahooks.hooks._dispatch import _drop_after_close, flatten_hooks
from kafkahooks.testing import RecordingHook

META = BrokerMeta(1, "127.0.0.1", 9092)


class WriteOnly:
    def __init__(self) -> None:
        self.keys: list[int] = []

    def on_broker_write(self, meta: BrokerMeta, key: int, n: int, ww: int, ttw: int, err: Any) -> None:
        self.keys.append(key)


class Raises:
    def on_broker_write(self, *args: Any) -> None:
        raise ValueError("boom")

    def on_broker_read(self, *args: Any) -> None:
        raise asyncio.CancelledError()


class Traced(WriteOnly):
    request_keys = TRACING_KEYS

    def __init__(self) -> None:
        super().__init__()
        self.read_keys: list[int] = []

    def on_broker_read(self, meta: BrokerMeta, key: int, n: int, rw: int, ttr: int, err: Any) -> None:
        self.read_keys.append(key)


def test_rejects_object_without_hooks() -> None:
    """An object implementing no hook is refused at construction, by name."""
    with pytest.raises(TypeError, match=r"object.*implements no hook"):
        HookDispatcher([object()])


def test_flattens_nested_lists_in_order() -> None:
    """Nested lists of hooks are flattened in registration order."""
    a, b, c = WriteOnly(), WriteOnly(), WriteOnly()
    assert [a, b, c] == flatten_hooks([a, [b, (c,)]])
    dispatcher = HookDispatcher([a, [b, [c]]])
    dispatcher.broker_write(META, 0, 10, 1, 1, None)
    assert [[0], [0], [0]] == [a.keys, b.keys, c.keys]


def test_sorts_each_method_into_its_event() -> None:
    """A hook is called only for the events it implements; flags say what is installed."""
    hook = WriteOnly()
    dispatcher = HookDispatcher([hook])
    dispatcher.broker_read(META, 1, 10, 0, 0, None)
    dispatcher.broker_write(META, 3, 10, 0, 0, None)
    assert [3] == hook.keys
    assert dispatcher.has_broker_hooks
    assert not dispatcher.has_produce_batch_hooks
    assert not HookDispatcher([]).has_broker_hooks


def test_exception_is_isolated_counted_and_logged_once() -> None:
    """A raising hook never reaches the caller; later hooks still run; one log line per interval."""
    after = WriteOnly()
    dispatcher = HookDispatcher([Raises(), after])
    with capture_logs() as logs:
        for _ in range(5):
            dispatcher.broker_write(META, 0, 10, 0, 0, None)
    assert [0] * 5 == after.keys
    assert {("Raises", "on_broker_write"): 5} == dispatcher.failures
    failed = [entry for entry in logs if entry["event"] == "hook_failed"]
    assert 1 == len(failed)
    assert "ValueError" == failed[0]["error_type"]


def test_cancellation_passes_through() -> None:
    """BaseException that is not an Exception (cancellation) is not swallowed."""
    dispatcher = HookDispatcher([Raises()])
    with pytest.raises(asyncio.CancelledError):
        dispatcher.broker_read(META, 1, 10, 0, 0, None)
    assert {} == dispatcher.failures


def test_strict_mode_keeps_the_first_error_for_the_application() -> None:
    """strict=True counts as usual, keeps the first exception and raises it once, on demand (the
    clients ask at the end of the application's calls), never on the I/O path itself."""

    class RaisesTwice:
        def on_broker_write(self, *args: Any) -> None:
            raise ValueError("boom")

        def on_broker_read(self, *args: Any) -> None:
            raise LookupError("second")

    dispatcher = HookDispatcher([RaisesTwice()], strict=True)
    dispatcher.broker_write(META, 0, 10, 0, 0, None)
    dispatcher.broker_read(META, 0, 10, 0, 0, None)
    assert 2 == dispatcher.failure_count
    with pytest.raises(ValueError, match="boom"):
        dispatcher.raise_pending()
    dispatcher.raise_pending()  # once


def test_key_filter_applies_per_key() -> None:
    """A hook with request_keys sees only those keys; others see everything."""
    traced, everything = Traced(), WriteOnly()
    dispatcher = HookDispatcher([traced, everything])
    for key in (ApiKey.METADATA, ApiKey.PRODUCE, ApiKey.FETCH, ApiKey.HEARTBEAT):
        dispatcher.broker_write(META, key, 1, 0, 0, None)
        dispatcher.broker_read(META, key, 1, 0, 0, None)
    assert [ApiKey.PRODUCE] == traced.keys
    assert [ApiKey.PRODUCE, ApiKey.FETCH] == traced.read_keys
    assert [ApiKey.METADATA, ApiKey.PRODUCE, ApiKey.FETCH, ApiKey.HEARTBEAT] == everything.keys


def test_key_filter_handles_keys_beyond_the_table() -> None:
    """Keys outside the precomputed range are still filtered correctly."""
    only_big = WriteOnly()
    only_big.request_keys = KeyFilter.of(writes=[500])  # type: ignore[attr-defined]
    dispatcher = HookDispatcher([only_big])
    dispatcher.broker_write(META, 500, 1, 0, 0, None)
    dispatcher.broker_write(META, 501, 1, 0, 0, None)
    assert [500] == only_big.keys


def test_e2e_passes_when_either_side_allows() -> None:
    """on_broker_e2e follows the union of the write and read filters."""
    recorder = RecordingHook()
    recorder.request_keys = TRACING_KEYS  # type: ignore[attr-defined]
    dispatcher = HookDispatcher([recorder])
    e2e = BrokerE2E(10, 10, 1, 2, 3, 4)
    for key in (ApiKey.PRODUCE, ApiKey.FETCH, ApiKey.METADATA):
        dispatcher.broker_e2e(META, key, e2e)
    assert [ApiKey.PRODUCE, ApiKey.FETCH] == [e.key for e in recorder.of("broker_e2e")]
    assert dispatcher.wants_e2e(ApiKey.FETCH)
    assert not dispatcher.wants_e2e(ApiKey.METADATA)


def test_bad_request_keys_attribute_is_refused() -> None:
    """request_keys must be a KeyFilter."""
    hook = WriteOnly()
    hook.request_keys = {0}  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="request_keys"):
        HookDispatcher([hook])


def test_seed_broker_names_follow_kgo() -> None:
    """Seed brokers get negative ids and kgo's seed_N names."""
    assert "seed_0" == BrokerMeta.seed(0, "h", 1).name
    assert -2 == BrokerMeta.seed(1, "h", 1).node_id
    assert "7" == BrokerMeta(7, "h", 1).name


def test_e2e_duration_is_write_plus_read() -> None:
    """duration_e2e_ns = time_to_write + read_wait + time_to_read, as kgo defines it."""
    e2e = BrokerE2E(1, 2, write_wait_ns=100, time_to_write_ns=2, read_wait_ns=3, time_to_read_ns=4)
    assert 9 == e2e.duration_e2e_ns
    assert e2e.err is None


def test_recording_hook_implements_every_hook() -> None:
    """RecordingHook says it records every hook: it has every method the dispatcher knows."""
    from kafkahooks.hooks import HOOK_METHODS

    assert [m for m in HOOK_METHODS if not callable(getattr(RecordingHook, m, None))] == []


def test_the_event_table_is_the_one_source() -> None:
    """Protocols, method names, the dispatcher's per-event slots and its call methods, what
    closing drops and RecordingHook all come from, or agree with, EVENTS."""
    import typing

    from kafkahooks.hooks import _protocols

    assert [e.method for e in _protocols.EVENTS] == list(_protocols.HOOK_METHODS)
    assert len(set(_protocols.HOOK_METHODS)) == len(_protocols.HOOK_METHODS)
    declared = {
        name
        for name, value in vars(_protocols).items()
        if isinstance(value, type) and name.endswith("Hook") and getattr(value, "_is_protocol", False)
    }
    # ConfiguredHook describes a hook's optional attributes, not an event.
    assert declared - {"ConfiguredHook"} == {e.protocol.__name__ for e in _protocols.EVENTS}
    for event in _protocols.EVENTS:
        own = {n for n in vars(event.protocol) if not n.startswith("_")}
        assert {event.method} == own, event
        if event.via_log:  # served by the client's request log (worker) or hand-out tracker
            continue
        assert callable(getattr(HookDispatcher, event.method.removeprefix("on_"))), event
    slots = typing.get_type_hints(HookDispatcher)
    assert {e.slot for e in _protocols.EVENTS} <= set(slots)
    recording = RecordingHook()
    dispatcher = HookDispatcher([recording])
    for event in _protocols.EVENTS:
        fns = getattr(dispatcher, event.slot)
        assert fns[0] if event.keyed else fns, event  # the hook is there for every event
    assert dispatcher.request_log is not None
    assert (recording,) == dispatcher.request_log.plugins
    assert dispatcher.handouts is not None
    assert (recording,) == dispatcher.handouts.entering
    assert dispatcher.request_log.connection_events
    from kafkahooks.hooks._requests import HANDOUT_METHODS

    handout_side = {e.method for e in _protocols.EVENTS if e.handout} | {"on_batches_handed_out"}
    assert handout_side == set(HANDOUT_METHODS)
    dispatcher.seal()
    for event in _protocols.EVENTS:
        fns = getattr(dispatcher, event.slot)
        assert all(f == (_drop_after_close,) for f in fns) if event.keyed else fns == (_drop_after_close,)


def test_a_bad_hook_budget_is_named_as_the_client_takes_it() -> None:
    """A wrapped client given hook_budget_ms=-5 says hook_budget_ms (the argument the user wrote),
    not the dispatcher's own name for it."""
    from kafkahooks.kafka import KafkaProducer

    with pytest.raises(ValueError, match=r"^hook_budget_ms must be positive \(milliseconds\) or None, not -5$"):
        KafkaProducer(bootstrap_servers="127.0.0.1:1", hook_budget_ms=-5, hooks=[RecordingHook()])


class Stamps:
    """A batch header injector that wants the first record's timestamp and answers with a tuple."""

    kafkahooks_batch_timestamp = True

    def __init__(self, key: str) -> None:
        self.key = key
        self.seen: list[tuple[Any, ...]] = []

    def inject_batch_headers(self, topic: str, partition: int, headers: Any, timestamp_ms: int) -> Any:
        self.seen.append((topic, partition, list(headers), timestamp_ms))
        return ((self.key, b"%d" % timestamp_ms),)


class InjectorRaises:
    def inject_batch_headers(self, topic: str, partition: int, headers: Any) -> Any:
        raise ValueError("boom")


@pytest.mark.parametrize("budget_ms", [None, 50.0], ids=["inline", "guarded"])
def test_batch_header_injectors_alone_and_together(budget_ms: float | None) -> None:
    """One injector (the fast path) and several answer alike: a list of the headers added, None
    for none; a failing injector adds nothing and is counted; later injectors see what earlier
    ones added."""
    one = Stamps("a")
    dispatcher = HookDispatcher([one], budget_ms=budget_ms)
    assert [("a", b"7")] == dispatcher.inject_batch_headers("t", 1, (), 7)
    assert [("t", 1, [], 7)] == one.seen

    failing = HookDispatcher([InjectorRaises()], budget_ms=budget_ms)
    assert failing.inject_batch_headers("t", 1, (), 7) is None
    assert {("InjectorRaises", "inject_batch_headers"): 1} == failing.failures

    first, second = Stamps("a"), Stamps("b")
    both = HookDispatcher([first, InjectorRaises(), second], budget_ms=budget_ms)
    assert [("a", b"9"), ("b", b"9")] == both.inject_batch_headers("t", 0, [("app", b"x")], 9)
    assert [("t", 0, [("app", b"x"), ("a", b"9")], 9)] == second.seen
    assert {("InjectorRaises", "inject_batch_headers"): 1} == both.failures
