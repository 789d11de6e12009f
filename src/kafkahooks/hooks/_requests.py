"""The batched telemetry path: one record per request for ``on_requests_finished`` hooks, and
connection events and consumer hand-outs for theirs.

Spans, metrics and data-stream checkpoints all derive from the same facts about a request: its
key and broker, the four timings, the bytes, the error, the partition batches it carried and
how the broker answered them. A connection's tap already keeps those facts in a
:class:`Request` while the request is on the wire; when the request's life is over the tap
appends that same object, once, to its client's :class:`RequestLog` (one bounded buffer). The
export worker drains the log and hands each pass to the hooks that implement
``on_requests_finished`` (:class:`~kafkahooks.hooks.RequestsFinishedHook`), which build spans,
record metrics and aggregate checkpoints off the I/O path. What the taps collect is the union of
the hooks' :class:`RequestNeeds` (their ``request_needs`` attribute).

The same log serves the path's other public events: ``on_connection_events`` (connects,
disconnects, throttles, in batches on the worker) and the consumer hand-outs
(``on_fetch_batch_entered``/``on_poll_ended`` on the application's thread,
``on_batches_handed_out`` on the worker; :mod:`kafkahooks.hooks._handout`). A hook may also
define ``attached(log)``, called when a client's log starts feeding it (kafkahooks' plugins use
it to sum drops across clients).

Costs per request on the I/O path: the tap's own bookkeeping, which every hook needs anyway,
plus one ``deque.append``. Nothing here reads a clock: spans turn the tap's monotonic times into
wall-clock times on the worker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from kafkahooks._selfstats import counter
from kafkahooks.export import worker
from kafkahooks.export._buffer import ByteBudget, WeighedBuffer
from kafkahooks.hooks._filter import ALL_KEYS, KeyFilter
from kafkahooks.hooks._records import RAW_HEADERS, ConnectionEvent, RawHandOut, Request, hand_out, position

_after_close = counter("events_after_close", "Hook events that arrived after their client was closed (dropped)")


class RequestNeeds(NamedTuple):
    """What a hook of the batched path needs collected (its ``request_needs`` attribute); a
    client's log collects the union of its hooks' needs. Everything but the keys is off by
    default: each costs the I/O path a little (a batch walk is a few microseconds per request).
    Connection events and hand-outs are collected when some hook implements their events."""

    request_keys: KeyFilter
    """Request keys whose records the hook's ``on_requests_finished`` gets."""
    produce_batches: bool = False
    """Walk Produce requests' batches (counts, sizes, first-record headers)."""
    fetch_batches: bool = False
    """Walk Fetch responses' batches."""
    header_keys: frozenset[str] = frozenset()
    """First-record header keys to extract from each batch (for requests' batches and hand-outs'
    ``info``)."""
    commits: bool = False
    """Keep OffsetCommit offsets and the broker's answers."""
    watermarks: bool = False
    """Fetch responses' high watermarks per partition (consumer lag)."""
    produce_header_keys: frozenset[str] | None = None
    """First-record header keys to extract from produced batches, when they differ from
    ``header_keys`` (None: the same). A plugin that finds its own produced batches again by their
    first timestamp (:mod:`kafkahooks.hooks._opened`) asks for none, and spares the I/O path a
    copy of each batch's first record."""


HANDOUT_METHODS = ("on_fetch_batch_entered", "on_poll_ended", "on_batches_handed_out")
"""The hand-out events (``EVENTS`` cannot be read here, it names this module's types; a test
keeps the two in step): a hook with one of them makes consumers track their batches."""


def implements(hook: Any, method: str) -> bool:
    """Whether ``hook`` has a callable ``method`` (how every event finds its hooks)."""
    return callable(getattr(hook, method, None))


def needs_of(hook: Any) -> RequestNeeds:
    """A hook's :class:`RequestNeeds`: its ``request_needs`` attribute, else its request records
    alone, for its ``request_keys`` (every key without one). The keys count only for a hook
    with ``on_requests_finished``."""
    needs = getattr(hook, "request_needs", None)
    if needs is None:
        return RequestNeeds(getattr(hook, "request_keys", None) or ALL_KEYS)
    if not isinstance(needs, RequestNeeds):
        raise TypeError(f"{type(hook).__qualname__}.request_needs must be a RequestNeeds, not {needs!r}")
    return needs


OTHERS_CAPACITY = 16_384
"""Consumer hand-outs and connection events a client's log holds for the export worker (one per
record batch handed out) before it drops and counts, whatever the byte budget still allows."""

MAX_BYTES = 8 * 1024 * 1024
"""What a client's log may hold for the export worker, in estimated bytes, both buffers together,
counted until the worker is done with it (so a pass stuck in an exporter counts too): past it,
items are dropped and counted. ``max_bytes=`` on :class:`~kafkahooks.tracing.BrokerSpans` and
:class:`~kafkahooks.metrics.MetricsHooks` changes it (the log takes the smallest asked)."""

# Estimated bytes per item, measured with tracemalloc on both clients (RELIABILITY.md, row 11c):
# a request's own objects, each batch it carried (info, list entry, acks), a hand-out (its record
# and the plugins' tokens), a connection event. Header values and copied first records are
# counted by their length on top.
_REQUEST_BYTES = 1_200
_BATCH_BYTES = 500
_HANDOUT_BYTES = 450
_EVENT_BYTES = 200


def weigh_request(r: Request) -> int:
    """Estimated bytes a finished request holds while it waits: its batches' first records and
    header values by their length (a hostile producer's 8 KB headers weigh 8 KB each)."""
    weight = _REQUEST_BYTES
    batches = r.batches
    if batches:
        for info in batches.values():
            weight += _BATCH_BYTES
            if info.first_record is not None:
                weight += len(info.first_record)
            for header in info.headers:
                weight += len(header[1])
    fetched = r.fetched_raw
    if fetched:
        for item in fetched:
            weight += _BATCH_BYTES
            for value in item[2][RAW_HEADERS + 1 :: 2]:  # the batch's header values
                weight += len(value)
    return weight


def weigh_other(item: Any) -> int:
    """Estimated bytes of a hand-out (with its batch's header values, which it alone may keep
    alive once the Fetch request that carried them was dropped) or of a connection event."""
    if type(item) is ConnectionEvent:
        return _EVENT_BYTES
    weight = _HANDOUT_BYTES
    for value in item[4][RAW_HEADERS + 1 :: 2]:  # a RawHandOut's batch's header values
        weight += len(value)
    return weight


class RequestLog:
    """One client's bounded buffer of finished requests, hand-outs and connection events, drained
    by the export worker into the hooks of the batched path (``plugins``: every hook with one of
    its events).

    Two buffers: ``buffer`` for finished requests (``capacity``, 2 048 by default), ``others`` for
    consumer hand-outs and connection events (:data:`OTHERS_CAPACITY`; one per record batch: a
    consumer reading one-record batches offers tens of thousands a second). Both charge one
    :class:`~kafkahooks.export._buffer.ByteBudget` (``budget``, :data:`MAX_BYTES` by default) with
    each item's estimated size, header values and copied first records by their length, until the
    worker is done with it: a stuck exporter holds at most that much, however heavy the requests
    (a Fetch response of hundreds of batches is one entry). ``offer`` and ``offer_other`` never
    block: past either bound they drop and count (visible as ``kafkahooks.self.dropped``). After
    :meth:`seal` every offer is dropped and counted as an event after close.
    """

    def __init__(
        self,
        name: str,
        plugins: Sequence[Any],
        capacity: int = 2_048,
        max_bytes: int = MAX_BYTES,
        on_failure: Callable[[Any, str, BaseException], None] | None = None,
    ) -> None:
        self.name = name
        self.plugins = tuple(plugins)
        needs = [needs_of(p) for p in self.plugins]
        finishing = [(p, n) for p, n in zip(self.plugins, needs, strict=True) if implements(p, "on_requests_finished")]
        wanted = [frozenset(k for k in range(128) if n.request_keys.allows_e2e(k)) for _, n in finishing]
        self.keys = frozenset().union(*wanted)
        """Request keys (below 128) some plugin wants a record of."""
        self._on_failure = on_failure
        self.produce_batches = any(n.produce_batches for n in needs)
        self.fetch_batches = any(n.fetch_batches for n in needs)
        self.header_keys: frozenset[str] = frozenset().union(*(n.header_keys for n in needs))
        self.produce_header_keys: frozenset[str] = frozenset().union(
            *(n.header_keys if n.produce_header_keys is None else n.produce_header_keys for n in needs)
        )
        self.commits = any(n.commits for n in needs)
        self.handouts = any(implements(p, m) for p in self.plugins for m in HANDOUT_METHODS)
        """Some hook implements a hand-out event: consumers track their batches."""
        self.connection_events = any(implements(p, "on_connection_events") for p in self.plugins)
        self.watermarks = any(n.watermarks for n in needs)
        asked = [c for p in self.plugins if (c := getattr(p, "capacity", None))]
        limits = [b for p in self.plugins if (b := getattr(p, "max_bytes", None))]
        self.budget = ByteBudget(min(limits, default=max_bytes))
        """Estimated bytes both buffers hold, and their limit (see :data:`MAX_BYTES`)."""
        self.buffer: WeighedBuffer[Any] = WeighedBuffer(
            name, min(asked, default=capacity), self.budget, weigh_request, worker().wake
        )
        self.others: WeighedBuffer[Any] = WeighedBuffer(
            name.replace("requests:", "handouts:", 1), OTHERS_CAPACITY, self.budget, weigh_other, worker().wake
        )
        self.sealed = False
        self.offer: Callable[[Request], bool] = self.buffer.offer
        """Queue one finished request for the worker, the I/O path's only cost for the fused
        plugins: the buffer's own ``offer`` (no call in between) until :meth:`seal`, then a drop
        that counts."""
        self.offer_other: Callable[[RawHandOut | ConnectionEvent], bool] = self.others.offer
        """Queue one hand-out or connection event, likewise."""
        self._on_requests = tuple(
            (p.on_requests_finished, None if keys == self.keys else keys)
            for (p, _), keys in zip(finishing, wanted, strict=True)
        )
        """Each hook's ``on_requests_finished`` and the keys it gets (None: all the log keeps)."""
        plugins = self.plugins
        self.entering = tuple(p for p in plugins if implements(p, "on_fetch_batch_entered"))
        """The hooks whose ``on_fetch_batch_entered`` sees each fetched batch, in the order of a
        :data:`~kafkahooks.hooks._records.RawHandOut`'s tokens (a :class:`HandOut`'s ``entering``)."""
        folding = [
            p
            for p in plugins
            if implements(p, "on_batches_handed_out") and callable(getattr(p, "kafkahooks_fold_handout", None))
        ]
        self.folds = tuple((position(self.entering, p), p.kafkahooks_fold_handout) for p in folding)
        """Each folding hook's place among :attr:`entering` (its token; None if it has none) and its
        ``kafkahooks_fold_handout``, called on the application's thread as each hand-out is made
        (kafkahooks' own plugins: they add it to what they keep for the worker at once, so the
        hand-out itself dies there; see :class:`~kafkahooks.export._buffer.PackedBuffer`)."""
        self._folded = tuple(f for p in folding if callable(f := getattr(p, "kafkahooks_folded", None)))
        """The folding hooks' ``kafkahooks_folded``, called once per pass on the worker."""
        self._on_handouts = tuple(
            p.on_batches_handed_out for p in plugins if implements(p, "on_batches_handed_out") and p not in folding
        )
        """The other hooks' ``on_batches_handed_out``: :class:`HandOut` s, built once a pass for all."""
        self.queues_handouts = bool(self._on_handouts)
        """Some hook takes hand-outs on the worker: each is queued (``offer_other``)."""
        self._on_events = tuple(p.on_connection_events for p in plugins if implements(p, "on_connection_events"))
        for plugin in self.plugins:
            attached = getattr(plugin, "attached", None)
            if attached is not None:
                attached(self)
        worker().register(self)

    def __repr__(self) -> str:
        names = ", ".join(type(p).__qualname__ for p in self.plugins)
        return f"<RequestLog {self.name} [{names}] waiting={len(self.buffer)}+{len(self.others)}>"

    @property
    def dropped(self) -> int:
        """Items both buffers refused."""
        return self.buffer.dropped + self.others.dropped

    def wants(self, key: int) -> bool:
        """Whether some plugin wants the record of a request with ``key``."""
        return key in self.keys

    def _offer_after_close(self, item: Any) -> bool:
        _after_close.add()
        return False

    def seal(self) -> None:
        """The client closed: later items are dropped and counted, queued ones still exported."""
        self.sealed = True
        self.offer = self.offer_other = self._offer_after_close

    # -- the export worker ------------------------------------------------------------------------

    def process(self) -> None:
        """Hand everything queued to the plugins (export worker only)."""
        requests, held = self.buffer.drain_weighed()
        rest, held_others = self.others.drain_weighed()
        try:
            for r in requests:
                if r.deferred is not None:
                    r.resolve()
            if requests:
                for on_requests, keys in self._on_requests:
                    mine = requests if keys is None else [r for r in requests if r.key in keys]
                    if mine:
                        self._call(on_requests, "on_requests_finished", mine)
            if rest:
                events = [i for i in rest if type(i) is ConnectionEvent]
                handouts = [i for i in rest if type(i) is not ConnectionEvent]
                if handouts:
                    entering = self.entering
                    built = [hand_out(h, entering) for h in handouts]
                    for on_handouts in self._on_handouts:
                        self._call(on_handouts, "on_batches_handed_out", built)
                if events:
                    for on_events in self._on_events:
                        self._call(on_events, "on_connection_events", events)
            for folded in self._folded:  # what the folding hooks kept since the last pass
                self._call(folded, "on_batches_handed_out")
        finally:  # until the plugins are done, what this pass holds still counts
            self.budget.release(held + held_others)

    def _call(self, fn: Callable[..., None], event: str, *args: Any) -> None:
        """One hook's share of a pass: a hook that raises is counted and logged as any hook is
        (by the dispatcher), and the other hooks still get the pass."""
        if self._on_failure is None:
            fn(*args)
            return
        try:
            fn(*args)
        except Exception as exc:
            self._on_failure(fn, event, exc)

    def failed(self, fn: Callable[..., Any], event: str, exc: Exception) -> None:
        """A hook of this log raised outside a pass (a hand-out event on the application's
        thread): counted and logged as any hook failure; re-raised without a dispatcher."""
        if self._on_failure is None:
            raise exc
        self._on_failure(fn, event, exc)

    def forget(self) -> None:
        """Drop what is queued without exporting it (a forked child)."""
        self.buffer.clear()
        self.others.clear()

    def close(self) -> None:
        """The worker is shutting down: one last pass."""
        self.process()
