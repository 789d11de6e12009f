"""The dispatcher: hooks sorted once into per-event tuples, every call isolated."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kafkahooks import _fork
from kafkahooks._log import RateLimitedLog, get_logger
from kafkahooks._selfstats import counter
from kafkahooks.hooks._filter import ALL_KEYS, KeyFilter
from kafkahooks.hooks._handout import HandOutTracker
from kafkahooks.hooks._lanes import GuardedCall, GuardedSyncCall, HookSlot
from kafkahooks.hooks._protocols import EVENTS, HOOK_METHODS
from kafkahooks.hooks._records import ConnectionEvent
from kafkahooks.hooks._requests import RequestLog, implements
from kafkahooks.hooks._types import (
    BrokerE2E,
    BrokerMeta,
    FetchBatchMetrics,
    ProduceBatchMetrics,
    ProduceRecord,
)

_logger = get_logger(__name__)
_hook_failures = counter("hook_failures", "Exceptions raised by hooks, caught before they reached a client")
_after_close = counter("events_after_close", "Hook events that arrived after their client was closed (dropped)")


def _drop_after_close(*args: Any) -> None:
    _after_close.add()


_DROP: tuple[Fn, ...] = (_drop_after_close,)

_KEY_SLOTS = 128
"""Keys below this get a precomputed tuple; Kafka's highest key today is under 100."""

Fn = Callable[..., Any]

DEFAULT_BUDGET_MS = 50.0
"""A user hook call longer than this moves the hook off the I/O path (see :mod:`kafkahooks.hooks._lanes`)."""

_SYNC_METHODS = frozenset(event.method for event in EVENTS if event.answers)
"""Hook methods whose answer the client waits for: they can be skipped, never offloaded."""
_LOG_METHODS = tuple(event.method for event in EVENTS if event.via_log)
"""Hook methods the client's request log and hand-out tracker serve, never guarded or offloaded."""

_CLOSE_TIMEOUT_S = 2.0


def flatten_hooks(hooks: Iterable[Any]) -> list[Any]:
    """Flatten nested lists and tuples of hooks (a plugin may return a list) into one list."""
    out: list[Any] = []
    for hook in hooks:
        if isinstance(hook, (list, tuple)):
            out.extend(flatten_hooks(hook))
        elif hook is not None:
            out.append(hook)
    return out


class _WithoutTimestamp:
    """A batch header injector that takes no first-record timestamp (a user hook's
    ``inject_batch_headers(topic, partition, headers)``), called as one that does."""

    __slots__ = ("fn",)

    def __init__(self, fn: Fn) -> None:
        self.fn = fn

    def __call__(self, topic: str, partition: int, headers: Any, timestamp_ms: int) -> Any:
        return self.fn(topic, partition, headers)


def _describe(fn: Fn) -> str:
    if isinstance(fn, _WithoutTimestamp):
        fn = fn.fn
    if isinstance(fn, GuardedCall):
        return fn.slot.name
    owner = getattr(fn, "__self__", fn)
    return type(owner).__qualname__ if owner is not fn else getattr(fn, "__qualname__", repr(fn))


class HookDispatcher:
    """Calls hooks for one client.

    The hook objects are sorted once, here, into a tuple of bound methods per event (and, for the
    keyed broker events, per request key after applying each hook's ``request_keys``
    :class:`~kafkahooks.hooks.KeyFilter`). An empty tuple makes an event cost one truth test.

    Every call is isolated: an ``Exception`` from a hook is caught, counted per (hook, event) in
    :attr:`failures`, logged as ``hook_failed`` at most once per ``log_interval_s`` per (hook,
    event), and never reaches the client. ``BaseException`` that is not an ``Exception``
    (cancellation, ``KeyboardInterrupt``) passes. With ``strict=True`` (for tests) the first such
    exception is kept and :meth:`raise_pending` raises it; the wrapped clients call it at the end
    of the application's next call on the client (``send``, ``poll``, ``getmany``...) and of
    ``close()``/``stop()``, since most events fire on the client's I/O path, where an exception
    could only break the client.

    Slow hooks: each call of a user hook is timed, and the first that takes longer than
    ``budget_ms`` moves that hook onto its own thread and bounded queue for the rest of the
    client's life (``offload=True`` starts it there); :attr:`offloaded` says which and why. Hooks
    whose class sets ``kafkahooks_inline = True`` (kafkahooks' own plugins, which only queue) are
    called directly and never timed; ``budget_ms=None`` or ``strict=True`` calls every hook inline,
    untimed, as franz-go does.

    Hooks implementing ``on_requests_finished``, ``on_connection_events`` or the hand-out events
    (``on_fetch_batch_entered``, ``on_poll_ended``, ``on_batches_handed_out``) take the batched
    path for them: kafkahooks' own spans, metrics, data streams and flight recorder, and any other.
    One :class:`~kafkahooks.hooks._requests.RequestLog` per dispatcher, fed finished request
    records and connection events by the connection taps and drained by the export worker, and a
    hand-out tracker on the consumer side (:attr:`request_log`, :attr:`handouts`). ``name`` labels
    that log's buffer.

    Raises ``TypeError`` for an object that implements no hook.
    """

    # One attribute per event of :data:`~kafkahooks.hooks._protocols.EVENTS` (its ``slot``), set
    # from that table in __init__ and by seal(); tests check the two agree.
    _new_client: tuple[Fn, ...]
    _client_closed: tuple[Fn, ...]
    _connect: tuple[Fn, ...]
    _disconnect: tuple[Fn, ...]
    _write_keyed: tuple[tuple[Fn, ...], ...]
    _read_keyed: tuple[tuple[Fn, ...], ...]
    _e2e_keyed: tuple[tuple[Fn, ...], ...]
    _throttle: tuple[Fn, ...]
    _produce_batch: tuple[Fn, ...]
    _fetch_batch: tuple[Fn, ...]
    _produce_buffered: tuple[Fn, ...]
    _produce_unbuffered: tuple[Fn, ...]
    _fetch_buffered: tuple[Fn, ...]
    _fetch_unbuffered: tuple[Fn, ...]
    _inject: tuple[Fn, ...]
    _inject_record: tuple[Fn, ...]
    _polled: tuple[Fn, ...]
    _committed: tuple[Fn, ...]
    _finished: tuple[Fn, ...]
    _connection_events: tuple[Fn, ...]
    _batch_entered: tuple[Fn, ...]
    _poll_ended: tuple[Fn, ...]
    _handed_out: tuple[Fn, ...]

    def __init__(
        self,
        hooks: Iterable[Any] = (),
        *,
        strict: bool = False,
        log_interval_s: float = 60.0,
        budget_ms: float | None = DEFAULT_BUDGET_MS,
        offload: bool = False,
        name: str = "client",
    ) -> None:
        self.hooks: tuple[Any, ...] = tuple(flatten_hooks(hooks))
        self.name = name
        self.strict = strict
        self._strict_error: BaseException | None = None
        if budget_ms is not None and budget_ms <= 0:
            raise ValueError(f"budget_ms must be positive or None, not {budget_ms!r}")
        self._slots: list[HookSlot] = []
        self.closing = False
        """Set when the client starts closing: requests its connections still carry end with
        :class:`~kafkahooks.hooks.ClientClosed` instead of a plain ``ConnectionClosed``."""
        self.failures: dict[tuple[str, str], int] = {}
        """Count of exceptions raised by hooks, keyed by (hook class name, event method name)."""
        self._failures_lock = _fork.Lock()
        self._failure_log = RateLimitedLog(_logger, log_interval_s)

        by_event: dict[str, list[tuple[Fn, KeyFilter]]] = {name: [] for name in HOOK_METHODS}
        fused = [hook for hook in self.hooks if any(implements(hook, m) for m in _LOG_METHODS)]
        for hook in self.hooks:
            found = False
            key_filter = getattr(hook, "request_keys", None) or ALL_KEYS
            if not isinstance(key_filter, KeyFilter):
                raise TypeError(f"{type(hook).__qualname__}.request_keys must be a KeyFilter, not {key_filter!r}")
            slot = self._slot_for(hook, budget_ms, offload)
            for method in HOOK_METHODS:
                fn = getattr(hook, method, None)
                if fn is not None and callable(fn):
                    if slot is not None and method not in _LOG_METHODS:
                        fn = (GuardedSyncCall if method in _SYNC_METHODS else GuardedCall)(fn, method, slot)
                    if method == "inject_batch_headers" and not getattr(hook, "kafkahooks_batch_timestamp", False):
                        fn = _WithoutTimestamp(fn)
                    by_event[method].append((fn, key_filter))
                    found = True
            if not found:
                raise TypeError(f"{hook!r} implements no hook interface (expected one of: {', '.join(HOOK_METHODS)})")

        def plain(name: str) -> tuple[Fn, ...]:
            return tuple(fn for fn, _ in by_event[name])

        def keyed(name: str, allows: Callable[[KeyFilter, int], bool]) -> tuple[tuple[Fn, ...], ...]:
            return tuple(tuple(fn for fn, f in by_event[name] if allows(f, k)) for k in range(_KEY_SLOTS))

        allows = {"write": KeyFilter.allows_write, "read": KeyFilter.allows_read, "e2e": KeyFilter.allows_e2e}
        for event in EVENTS:
            setattr(self, event.slot, keyed(event.method, allows[event.keyed]) if event.keyed else plain(event.method))
        self._filters = {event.method: tuple(by_event[event.method]) for event in EVENTS if event.keyed}

        wanted: set[str] = set()
        for hook in self.hooks:
            keys = getattr(hook, "batch_header_keys", None)
            if keys:
                if isinstance(keys, str):
                    raise TypeError(f"{type(hook).__qualname__}.batch_header_keys must be a collection of str")
                wanted.update(keys)
        self.request_log: RequestLog | None = (
            RequestLog(f"requests:{self.name}", fused, on_failure=self._failed) if fused else None
        )
        """The log that feeds the batched and hand-out events' hooks, or None when no hook
        implements one."""
        self.handouts: HandOutTracker | None = (
            HandOutTracker(self.request_log) if self.request_log is not None and self.request_log.handouts else None
        )
        """The consumer hand-out tracker, when some hook implements a hand-out event, or None."""
        self._log_events = self.request_log if self.request_log and self.request_log.connection_events else None
        log = self.request_log
        self.batch_header_keys: frozenset[str] = frozenset(wanted.union(log.header_keys) if log else wanted)
        """First-record header keys some hook or plugin wants from each fetched batch."""
        self.produce_header_keys: frozenset[str] = frozenset(wanted.union(log.produce_header_keys) if log else wanted)
        """First-record header keys some hook or plugin wants from each produced batch (a hook's
        ``batch_header_keys`` count for both)."""

        self.has_broker_hooks: bool = any(by_event[e.method] for e in EVENTS if e.on_connections) or (
            self.request_log is not None
        )
        """Whether anything must be installed on the connections."""
        self.has_io_hooks = any(by_event[name] for name in ("on_broker_write", "on_broker_read", "on_broker_e2e"))
        """Whether any hook listens to writes, reads or end-to-end events (the taps skip the calls
        otherwise: kafkahooks' own plugins read the request log instead)."""
        self.has_produce_batch_hooks = bool(self._produce_batch)
        self.has_fetch_batch_hooks = bool(self._fetch_batch)
        self.has_produce_record_hooks = bool(self._produce_buffered or self._produce_unbuffered)
        self.has_produce_unbuffered_hooks = bool(self._produce_unbuffered)
        """Whether a send's outcome must be watched (a callback per record otherwise saved)."""
        self.has_fetch_record_hooks = bool(self._fetch_buffered or self._fetch_unbuffered)
        self.has_batch_header_injectors = bool(self._inject)
        self.has_record_header_injectors = bool(self._inject_record)
        self.has_poll_hooks = bool(self._polled)
        self.has_commit_hooks = bool(self._committed)

    def __bool__(self) -> bool:
        return bool(self.hooks)

    def __repr__(self) -> str:
        names = ", ".join(type(h).__qualname__ for h in self.hooks)
        return f"<HookDispatcher [{names}]{' strict' if self.strict else ''}>"

    def _slot_for(self, hook: Any, budget_ms: float | None, offload: bool) -> HookSlot | None:
        """The guard for a user hook, or None for a hook called directly."""
        if self.strict or getattr(hook, "kafkahooks_inline", False) or (budget_ms is None and not offload):
            return None
        budget_ns = int(budget_ms * 1e6) if budget_ms is not None else 2**62
        slot = HookSlot(type(hook).__qualname__, budget_ns, self._failed)
        if offload:
            slot.offload("offload_hooks", 0)
        self._slots.append(slot)
        return slot

    @property
    def offloaded(self) -> dict[str, tuple[str, int]]:
        """Hooks running off the I/O path, by class name: (the event whose call was too slow, its
        duration in ns), or ``("offload_hooks", 0)`` when the client asked for it."""
        return {slot.name: slot.reason for slot in self._slots if slot.reason is not None}

    @property
    def offload_dropped(self) -> int:
        """Events for offloaded hooks dropped (queue full, or the client closed)."""
        return sum(slot.lane.dropped for slot in self._slots if slot.lane is not None)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until offloaded hooks have run every event queued so far; False on timeout."""
        deadline = time.monotonic() + timeout_s
        done = True
        for slot in self._slots:
            if slot.lane is not None:
                done = slot.lane.flush(deadline - time.monotonic()) and done
        return done

    def _unusual_key(self, name: str, key: int) -> tuple[Fn, ...]:
        """Hooks for a key outside the precomputed range (never seen from today's brokers)."""
        allows = {
            "on_broker_write": KeyFilter.allows_write,
            "on_broker_read": KeyFilter.allows_read,
            "on_broker_e2e": KeyFilter.allows_e2e,
        }[name]
        return tuple(fn for fn, f in self._filters[name] if allows(f, key))

    def _failed(self, fn: Fn, event: str, exc: BaseException) -> None:
        hook = _describe(fn)
        with self._failures_lock:
            self.failures[(hook, event)] = self.failures.get((hook, event), 0) + 1
        _hook_failures.add()
        self._failure_log.warning(
            (hook, event),
            "hook_failed",
            hook=hook,
            hook_event=event,
            error_type=type(exc).__qualname__,
            error=repr(exc)[:200],
        )
        if self.strict:
            with self._failures_lock:
                if self._strict_error is None:
                    self._strict_error = exc

    def raise_pending(self) -> None:
        """Strict mode: raise the first exception a hook raised since the last call, once."""
        exc = self._strict_error
        if exc is not None:
            self._strict_error = None
            raise exc

    def close(self, timeout_s: float = _CLOSE_TIMEOUT_S) -> None:
        """The client is closed: from now on every event is dropped and counted
        (``events_after_close``) instead of reaching the hooks. Costs nothing before it is called.

        Offloaded hooks get up to ``timeout_s`` to run what was queued before; what a hung hook
        leaves waiting is dropped and counted."""
        self.seal()
        self.drain(timeout_s)

    def seal(self) -> None:
        """The instant part of :meth:`close`: later events are dropped and counted."""
        for event in EVENTS:
            setattr(self, event.slot, (_DROP,) * _KEY_SLOTS if event.keyed else _DROP)
        self._filters = dict.fromkeys(self._filters, ((_drop_after_close, ALL_KEYS),))
        self._log_events = None  # a late connection event is counted once, by its slot's drop above
        if self.request_log is not None:
            self.request_log.seal()

    def drain(self, timeout_s: float = _CLOSE_TIMEOUT_S) -> None:
        """The waiting part of :meth:`close` (an event loop runs it in a thread): offloaded hooks
        get up to ``timeout_s`` in all to run what is queued, then their lanes close."""
        deadline = time.monotonic() + timeout_s
        for slot in self._slots:
            if slot.lane is not None:
                slot.lane.close(deadline - time.monotonic())

    @property
    def failure_count(self) -> int:
        """Total exceptions caught from hooks."""
        with self._failures_lock:
            return sum(self.failures.values())

    # -- client lifecycle -------------------------------------------------------------------------

    def new_client(self, client: Any) -> None:
        for fn in self._new_client:
            try:
                fn(client)
            except Exception as exc:
                self._failed(fn, "on_new_client", exc)

    def client_closed(self, client: Any) -> None:
        for fn in self._client_closed:
            try:
                fn(client)
            except Exception as exc:
                self._failed(fn, "on_client_closed", exc)

    # -- broker events ----------------------------------------------------------------------------

    def broker_connect(self, meta: BrokerMeta, init_ns: int, err: BaseException | None) -> None:
        for fn in self._connect:
            try:
                fn(meta, init_ns, err)
            except Exception as exc:
                self._failed(fn, "on_broker_connect", exc)
        if self._log_events is not None:
            self._log_events.offer_other(ConnectionEvent("connect", meta, init_ns, err))

    def broker_disconnect(self, meta: BrokerMeta) -> None:
        for fn in self._disconnect:
            try:
                fn(meta)
            except Exception as exc:
                self._failed(fn, "on_broker_disconnect", exc)
        if self._log_events is not None:
            self._log_events.offer_other(ConnectionEvent("disconnect", meta, 0, None))

    def broker_write(
        self,
        meta: BrokerMeta,
        key: int,
        nbytes: int,
        write_wait_ns: int,
        time_to_write_ns: int,
        err: BaseException | None,
    ) -> None:
        for fn in self._write_keyed[key] if 0 <= key < _KEY_SLOTS else self._unusual_key("on_broker_write", key):
            try:
                fn(meta, key, nbytes, write_wait_ns, time_to_write_ns, err)
            except Exception as exc:
                self._failed(fn, "on_broker_write", exc)

    def broker_read(
        self,
        meta: BrokerMeta,
        key: int,
        nbytes: int,
        read_wait_ns: int,
        time_to_read_ns: int,
        err: BaseException | None,
    ) -> None:
        for fn in self._read_keyed[key] if 0 <= key < _KEY_SLOTS else self._unusual_key("on_broker_read", key):
            try:
                fn(meta, key, nbytes, read_wait_ns, time_to_read_ns, err)
            except Exception as exc:
                self._failed(fn, "on_broker_read", exc)

    def broker_e2e(self, meta: BrokerMeta, key: int, e2e: BrokerE2E) -> None:
        for fn in self._e2e_keyed[key] if 0 <= key < _KEY_SLOTS else self._unusual_key("on_broker_e2e", key):
            try:
                fn(meta, key, e2e)
            except Exception as exc:
                self._failed(fn, "on_broker_e2e", exc)

    def wants_e2e(self, key: int) -> bool:
        """Whether any hook listens for ``key``'s end-to-end event (saves building a BrokerE2E)."""
        return bool(self._e2e_keyed[key]) if 0 <= key < _KEY_SLOTS else bool(self._unusual_key("on_broker_e2e", key))

    def broker_throttle(self, meta: BrokerMeta, interval_ns: int, after_response: bool) -> None:
        for fn in self._throttle:
            try:
                fn(meta, interval_ns, after_response)
            except Exception as exc:
                self._failed(fn, "on_broker_throttle", exc)
        if self._log_events is not None:
            self._log_events.offer_other(ConnectionEvent("throttle", meta, interval_ns, None, after_response))

    def produce_batch_written(self, meta: BrokerMeta, topic: str, partition: int, metrics: ProduceBatchMetrics) -> None:
        for fn in self._produce_batch:
            try:
                fn(meta, topic, partition, metrics)
            except Exception as exc:
                self._failed(fn, "on_produce_batch_written", exc)

    def fetch_batch_read(self, meta: BrokerMeta, topic: str, partition: int, metrics: FetchBatchMetrics) -> None:
        for fn in self._fetch_batch:
            try:
                fn(meta, topic, partition, metrics)
            except Exception as exc:
                self._failed(fn, "on_fetch_batch_read", exc)

    # -- per-record events ------------------------------------------------------------------------

    def produce_record_buffered(self, record: ProduceRecord) -> None:
        for fn in self._produce_buffered:
            try:
                fn(record)
            except Exception as exc:
                self._failed(fn, "on_produce_record_buffered", exc)

    def produce_record_unbuffered(self, record: ProduceRecord, err: BaseException | None) -> None:
        for fn in self._produce_unbuffered:
            try:
                fn(record, err)
            except Exception as exc:
                self._failed(fn, "on_produce_record_unbuffered", exc)

    def fetch_record_buffered(self, record: Any) -> None:
        for fn in self._fetch_buffered:
            try:
                fn(record)
            except Exception as exc:
                self._failed(fn, "on_fetch_record_buffered", exc)

    def inject_batch_headers(
        self, topic: str, partition: int, headers: Sequence[tuple[str, bytes]], timestamp_ms: int = -1
    ) -> list[tuple[str, bytes]] | None:
        """Headers every injector wants on a new batch's first record, or None. Each injector sees
        the record's headers with what earlier injectors added, so the same plugin installed twice
        adds its header once. ``timestamp_ms`` is the record's timestamp as the batch will carry it
        (-1: unknown), for the plugins that declare ``kafkahooks_batch_timestamp`` (they find the
        batch again by it, see :mod:`kafkahooks.hooks._opened`); other injectors are called
        without it."""
        fns = self._inject
        if len(fns) != 1:
            return self._injected(fns, "inject_batch_headers", topic, partition, headers, timestamp_ms)
        # One injector (data streams alone, say): nothing to merge, so no list is built. This
        # runs once per producer batch on the client's I/O path.
        fn = fns[0]
        try:
            got = fn(topic, partition, headers, timestamp_ms)
        except Exception as exc:
            self._failed(fn, "inject_batch_headers", exc)
            return None
        if not got:
            return None
        return got if type(got) is list else list(got)

    def inject_record_headers(
        self, topic: str, partition: int, headers: Sequence[tuple[str, bytes]]
    ) -> list[tuple[str, bytes]] | None:
        """Headers every record injector wants on this record, or None (as :meth:`inject_batch_headers`)."""
        return self._injected(self._inject_record, "inject_record_headers", topic, partition, headers)

    def _injected(
        self,
        fns: tuple[Fn, ...],
        event: str,
        topic: str,
        partition: int,
        headers: Sequence[tuple[str, bytes]],
        *more: Any,
    ) -> list[tuple[str, bytes]] | None:
        extra: list[tuple[str, bytes]] | None = None
        for fn in fns:
            try:
                got = fn(topic, partition, [*headers, *extra] if extra else headers, *more)
            except Exception as exc:
                self._failed(fn, event, exc)
                continue
            if got:
                extra = [*extra, *got] if extra else list(got)
        return extra

    def records_polled(self, topic: str, partition: int, records: Sequence[Any]) -> None:
        for fn in self._polled:
            try:
                fn(topic, partition, records)
            except Exception as exc:
                self._failed(fn, "on_records_polled", exc)

    def offsets_committed(self, group: str, topic: str, partition: int, offset: int) -> None:
        for fn in self._committed:
            try:
                fn(group, topic, partition, offset)
            except Exception as exc:
                self._failed(fn, "on_offsets_committed", exc)

    def fetch_record_unbuffered(self, record: Any, polled: bool) -> None:
        for fn in self._fetch_unbuffered:
            try:
                fn(record, polled)
            except Exception as exc:
                self._failed(fn, "on_fetch_record_unbuffered", exc)
