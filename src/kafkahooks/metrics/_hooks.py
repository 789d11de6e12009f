"""OpenTelemetry metrics from the broker and batch hooks (what kprom and kotel's meter give franz-go).

The plugin is a hook of ``on_requests_finished`` (:mod:`kafkahooks.hooks._requests`): it adds nothing to the
I/O path, and on the export worker it reads each finished request, hand-out and connection event
once. Counters are summed per attribute set over each export pass (one SDK call per series per
pass, whatever the traffic); histograms are recorded per request, and by default only one:
``messaging.client.operation.duration`` for Produce and Fetch requests. The per-key request
timings (``kafkahooks.request.*``) and the batch-size histogram are opt-in
(``MetricLabels(detailed_timings=True)``). Consumers also report their lag per partition
(``kafkahooks.consumer.lag``, ``kafkahooks.consumer.time_lag``) from the high watermark every
Fetch response carries: no extra request.

Request timings are labelled by request key (``kafkahooks.request.key``: ``Produce``, ``Fetch``...)
so Fetch long-polls never pollute Produce latency, kprom's mistake. Label cardinality is bounded
and chosen by :class:`MetricLabels`.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry import metrics
from opentelemetry.semconv._incubating.attributes import messaging_attributes as msg
from opentelemetry.semconv._incubating.metrics import messaging_metrics
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.semconv.schemas import Schemas

from kafkahooks import _clock, _fork
from kafkahooks._identity import ClientIdentity
from kafkahooks._otel import Record, recorder
from kafkahooks._selfstats import counter
from kafkahooks._version import __version__
from kafkahooks.hooks import ALL_KEYS, ApiKey, BrokerMeta, ClientClosed, key_name
from kafkahooks.hooks._records import (
    COMPRESSED_BYTES,
    NUM_RECORDS,
    UNCOMPRESSED_BYTES,
    BatchInfo,
    ConnectionEvent,
    HandOut,
    RawBatch,
    Request,
    fetch_lags,
)
from kafkahooks.hooks._requests import RequestNeeds

DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""semconv's buckets for messaging.client.operation.duration."""
REQUEST_BUCKETS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
"""Finer at the low end than semconv's: writes and acks on a LAN take tens of microseconds."""
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)

_topics_folded = counter("metric_topics_folded", "Metric points whose topic label was dropped (over max_topics)")
_PRODUCE = int(ApiKey.PRODUCE)
_FETCH = int(ApiKey.FETCH)
_MAX_SERIES = 4096
"""Cached attribute sets per kind (broker and key, topic); past this the cache starts over."""


@dataclass(frozen=True)
class MetricLabels:
    """Which labels the metrics carry: every choice bounds the number of time series.

    ``broker``: ``"id"`` (node id; seed connections as ``seed_N``), ``"host"`` (host:port), or
    ``"none"``. ``rack``: add the broker's rack. ``topic``: label produce/fetch counts and the
    messaging metrics by topic. ``client_id``: add ``messaging.client.id``.
    """

    broker: Literal["id", "host", "none"] = "id"
    rack: bool = False
    topic: bool = True
    client_id: bool = False
    max_topics: int = 1000
    """Topics labelled at most (each adds series for the life of the meter provider); records of
    later topics count in the series without a topic label (``metric_topics_folded`` counts them)."""
    detailed_timings: bool = False
    """Also record the per-key request histograms (``kafkahooks.request.duration``, ``.write_wait``,
    ``.time_to_write``, ``.read_wait``, ``.time_to_read``: up to five points per request, every key)
    and ``kafkahooks.batch.size`` per batch. kprom makes its equivalents opt-in too."""


class _Instruments:
    """kafkahooks' instruments on one meter provider, made once per provider and shared by every
    client's plugin (instruments live as long as their provider: one set per client would grow the
    provider, and OpenTelemetry's proxy provider, with every client ever built)."""

    def __init__(self, provider: Any) -> None:
        meter = provider.get_meter("kafkahooks", __version__, schema_url=Schemas.V1_44_0.value)

        def histogram(
            name: str, description: str, unit: str = "s", buckets: tuple[float, ...] = REQUEST_BUCKETS_S
        ) -> Record:
            return recorder(
                meter.create_histogram(
                    name, unit=unit, description=description, explicit_bucket_boundaries_advisory=list(buckets)
                )
            )

        def count(name: str, description: str, unit: str) -> Record:
            return recorder(meter.create_counter(name, unit=unit, description=description))

        self.write_wait = histogram("kafkahooks.request.write_wait", "From request creation to the start of its write")
        self.time_to_write = histogram("kafkahooks.request.time_to_write", "The write of a request")
        self.read_wait = histogram("kafkahooks.request.read_wait", "Response queued behind earlier responses")
        self.time_to_read = histogram("kafkahooks.request.time_to_read", "From read start to the full response")
        self.e2e = histogram("kafkahooks.request.duration", "time_to_write + read_wait + time_to_read")
        self.throttle = histogram("kafkahooks.broker.throttle", "Throttle time the broker asked for")
        self.bytes_written = count("kafkahooks.broker.bytes_written", "Request bytes written", "By")
        self.bytes_read = count("kafkahooks.broker.bytes_read", "Response bytes read", "By")
        self.write_errors = count("kafkahooks.broker.write_errors", "Requests whose write failed", "{request}")
        self.read_errors = count("kafkahooks.broker.read_errors", "Requests whose response was lost", "{request}")
        self.connects = count("kafkahooks.broker.connects", "Successful connections", "{connection}")
        self.connect_errors = count("kafkahooks.broker.connect_errors", "Failed connection attempts", "{connection}")
        self.disconnects = count("kafkahooks.broker.disconnects", "Connections closed", "{connection}")
        self.records = count("kafkahooks.batch.records", "Records in produced or fetched batches", "{record}")
        self.uncompressed = count("kafkahooks.batch.uncompressed_bytes", "Batch records, uncompressed", "By")
        self.compressed = count("kafkahooks.batch.compressed_bytes", "Batch records as sent", "By")
        self.batch_size = histogram(
            "kafkahooks.batch.size", "Records per partition batch", unit="{record}", buckets=BATCH_BUCKETS
        )
        self.operation = histogram(
            messaging_metrics.MESSAGING_CLIENT_OPERATION_DURATION,
            "Duration of messaging operation initiated by a producer or consumer client",
            buckets=DURATION_BUCKETS_S,
        )
        self.sent = count(messaging_metrics.MESSAGING_CLIENT_SENT_MESSAGES, "Messages a producer sent", "{message}")
        self.consumed = count(
            messaging_metrics.MESSAGING_CLIENT_CONSUMED_MESSAGES, "Messages delivered to the application", "{message}"
        )
        self.lag = meter.create_gauge(
            "kafkahooks.consumer.lag",
            unit="{message}",
            description="Records between a consumer's fetch position and the partition's high watermark",
        ).set
        self.time_lag = meter.create_gauge(
            "kafkahooks.consumer.time_lag",
            unit="s",
            description="Age of the last record a consumer fetched while behind (0 when caught up)",
        ).set


_shared: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()
_shared_lock = _fork.Lock()


def _instruments(provider: Any) -> _Instruments:
    with _shared_lock:
        found = _shared.get(provider)
        if found is None:
            found = _shared[provider] = _Instruments(provider)
        return found


class MetricsHooks:
    """Broker, batch and messaging metrics for one wrapped client (see the module docs)."""

    kafkahooks_kind = "metrics"
    """Passed in ``hooks=``, an instance replaces the plugin of this kind a tracing mode installs."""
    kafkahooks_inline = True
    """Only reads what the taps recorded, on the export worker: never timed or offloaded."""

    def __init__(
        self,
        identity: ClientIdentity | None = None,
        *,
        meter_provider: Any = None,
        labels: MetricLabels | None = None,
        capacity: int = 2_048,
        max_bytes: int | None = None,
    ) -> None:
        self._own_identity = identity is None
        self.identity = identity or ClientIdentity()
        self.labels = labels or MetricLabels()
        self.capacity = capacity
        """Items waiting for the export worker before new ones are dropped (the client's log takes
        the smallest capacity its plugins ask for)."""
        self.max_bytes = max_bytes
        """Estimated bytes the client's log may hold (None: :data:`~kafkahooks.hooks._requests.MAX_BYTES`,
        8 MiB; the log takes the smallest its plugins ask for)."""
        self._m = _instruments(meter_provider or metrics.get_meter_provider())
        from kafkahooks.metrics._self import install_self_metrics

        install_self_metrics(meter_provider)
        self._counts: dict[tuple[int, int], tuple[Record, dict[str, Any], int]] = {}
        self._broker_attrs: dict[BrokerMeta, dict[str, Any]] = {}
        self._key_attrs: dict[tuple[int, int, str | None], tuple[BrokerMeta, dict[str, Any]]] = {}
        self._topic_attrs: dict[tuple[str, str, str | None], dict[str, Any]] = {}
        self._partition_attrs: dict[tuple[int, int], tuple[dict[str, Any], dict[str, Any]]] = {}
        self._labelled: set[str] = set()
        self._identity_changed = False
        self._logs: weakref.WeakSet[Any] = weakref.WeakSet()
        self._folded: dict[str, int] = {}
        """Records handed out per topic since the worker's last pass (:meth:`kafkahooks_fold_handout`)."""
        self._folding_lock = _fork.Lock()

    @property
    def request_needs(self) -> RequestNeeds:
        return RequestNeeds(ALL_KEYS, produce_batches=True, fetch_batches=True, watermarks=True)

    def attached(self, log: Any) -> None:
        """A client's request log feeds this plugin."""
        self._logs.add(log)

    @property
    def dropped(self) -> int:
        """Items (requests, hand-outs, connection events) dropped because a client's log was full."""
        return sum(log.dropped for log in self._logs)

    def bind_identity(self, identity: ClientIdentity) -> None:
        """Name the client this plugin serves, when it was built without an identity (``hooks=[MetricsHooks()]``)."""
        if self._own_identity:
            self.identity = identity
            self._identity_changed = True

    # -- attribute sets, cached (the export worker) -----------------------------------------------

    def _fresh(self) -> None:
        if self._identity_changed:  # cached attribute sets name the old identity
            self._identity_changed = False
            self._broker_attrs.clear()
            self._key_attrs.clear()
            self._topic_attrs.clear()
            self._partition_attrs.clear()
        if len(self._topic_attrs) > 8 * self.labels.max_topics:  # error types are bounded too
            self._topic_attrs.clear()

    def _broker(self, meta: BrokerMeta) -> dict[str, Any]:
        attrs = self._broker_attrs.get(meta)
        if attrs is None:
            attrs = {}
            if self.labels.broker == "id":
                attrs["kafkahooks.broker"] = meta.name
            elif self.labels.broker == "host":
                attrs["kafkahooks.broker"] = f"{meta.host}:{meta.port}"
            if self.labels.rack and meta.rack:
                attrs["kafkahooks.broker.rack"] = meta.rack
            if self.labels.client_id and self.identity.client_id:
                attrs[msg.MESSAGING_CLIENT_ID] = self.identity.client_id
            self._broker_attrs[meta] = attrs
        return attrs

    def _keyed(self, meta: BrokerMeta, key: int, error: str | None) -> dict[str, Any]:
        # By the meta object's identity (each connection keeps one): hashing the dataclass would
        # cost more than the rest of the lookup.
        found = self._key_attrs.get((id(meta), key, error))
        if found is not None and found[0] is meta:
            return found[1]
        attrs = {**self._broker(meta), "kafkahooks.request.key": key_name(key)}
        if error:
            attrs[error_attributes.ERROR_TYPE] = error
        if len(self._key_attrs) >= _MAX_SERIES:
            self._key_attrs.clear()
        self._key_attrs[(id(meta), key, error)] = (meta, attrs)
        return attrs

    def _messaging(self, operation: str, topic: str | None, error: str | None = None) -> dict[str, Any]:
        topic = topic if self.labels.topic else None
        if topic is not None and topic not in self._labelled:
            if len(self._labelled) >= self.labels.max_topics:
                _topics_folded.add()  # past the cap: the series without a topic label takes it
                topic = None
            else:
                self._labelled.add(topic)
        cache_key = (operation, topic or "", error)
        attrs = self._topic_attrs.get(cache_key)
        if attrs is None:
            attrs = {msg.MESSAGING_SYSTEM: "kafka", msg.MESSAGING_OPERATION_NAME: operation}
            if topic:
                attrs[msg.MESSAGING_DESTINATION_NAME] = topic
            if operation in ("poll", "fetch") and self.identity.group_id:
                attrs[msg.MESSAGING_CONSUMER_GROUP_NAME] = self.identity.group_id
            if self.labels.client_id and self.identity.client_id:
                attrs[msg.MESSAGING_CLIENT_ID] = self.identity.client_id
            if error:
                attrs[error_attributes.ERROR_TYPE] = error
            self._topic_attrs[cache_key] = attrs
        return attrs

    def _count(self, counter: Record, amount: int, attrs: dict[str, Any]) -> None:
        """Sum counter increments over a pass: one SDK call per (counter, labels), not per event."""
        key = (id(counter), id(attrs))
        found = self._counts.get(key)
        self._counts[key] = (counter, attrs, amount + (found[2] if found else 0))

    def _add_counts(self) -> None:
        counts, self._counts = self._counts, {}
        for add, attrs, amount in counts.values():
            if amount:
                add(amount, attrs)

    # -- the export worker ------------------------------------------------------------------------

    def on_requests_finished(self, requests: Sequence[Request]) -> None:
        """Record one pass of finished requests: sums per series first, then one SDK call each."""
        self._fresh()
        sums = _PassSums()
        for r in requests:
            err = r.write_err or r.read_err
            ended_by_client = type(err) is ClientClosed
            error = None if err is None or ended_by_client else type(err).__qualname__
            attrs = self._keyed(r.meta, r.key, error)
            sums.broker(attrs).add(r, error)
            if self.labels.detailed_timings and not ended_by_client:
                self._timings(r, attrs)
            if r.key == _PRODUCE:
                self._produced(r, error, sums)
            elif r.key == _FETCH:
                self._fetched(r, error, sums)
        count = self._count
        m = self._m
        for b in sums.brokers.values():
            count(m.bytes_written, b.written, b.attrs)
            count(m.bytes_read, b.read, b.attrs)
            count(m.write_errors, b.write_errors, b.attrs)
            count(m.read_errors, b.read_errors, b.attrs)
        for t in sums.topics.values():
            count(m.records, t.records, t.attrs)
            count(m.uncompressed, t.uncompressed, t.attrs)
            count(m.compressed, t.compressed, t.attrs)
            count(m.sent, t.sent, t.attrs)
        self._add_counts()
        if sums.lags:
            self._record_lags(sums.lags)

    def _produced(self, r: Request, error: str | None, sums: _PassSums) -> None:
        """A Produce request: its batches per topic (sent = acknowledged), one duration point."""
        batches = r.batches
        topic = None
        if batches:
            acks = r.acks
            if acks is not None:
                acked: Any = {(t, p) for t, p, code, _ in acks if code == 0}
            else:  # acks=0: written is all a producer learns
                acked = batches if not r.expects_response and error is None else ()
            for tp, info in batches.items():
                self._batch(sums, self._messaging("send", tp[0]), info, tp in acked)
            if len(batches) == 1 or len({t for t, _ in batches}) == 1:
                topic = next(iter(batches))[0]
        self._m.operation(r.duration_ns / 1e9, self._messaging("send", topic, error))

    def _fetched(self, r: Request, error: str | None, sums: _PassSums) -> None:
        """A Fetch response: lag per partition, its batches per topic, one point for its time to
        read (none for an empty long poll, or one cut short by a normal stop)."""
        if r.watermarks:
            for t, p, records, seconds in fetch_lags(r, sums.wall_offset()):
                sums.lags[(t, p)] = (records, seconds)
        fetched = r.fetched_raw
        topic = None
        if fetched:
            last: str | None = None
            attrs: dict[str, Any] = {}
            mixed = False
            for t, _, batch in fetched:
                if t != last:  # a response's batches come partition by partition
                    if last is not None:
                        mixed = True
                    last = t
                    attrs = self._messaging("fetch", t)
                self._batch(sums, attrs, batch, False)
            topic = None if mixed else last
        elif error is None:
            return
        self._m.operation(r.time_to_read_ns / 1e9, self._messaging("poll", topic, error))

    def _batch(self, sums: _PassSums, attrs: dict[str, Any], info: BatchInfo | RawBatch, sent: bool) -> None:
        sums.topic(attrs).add(info, sent)
        if self.labels.detailed_timings:
            self._m.batch_size(info[NUM_RECORDS], attrs)

    def _record_lags(self, lags: dict[tuple[str, int], tuple[int, float]]) -> None:
        """One gauge reading per partition (per consumer without topic labels: records summed,
        the largest time lag)."""
        if not self.labels.topic:
            attrs = self._messaging("poll", None)
            self._m.lag(sum(r for r, _ in lags.values()), attrs)
            self._m.time_lag(max(s for _, s in lags.values()), attrs)
            return
        for (topic, partition), (records, seconds) in lags.items():
            # Keyed by the topic's attribute set, not its name: past the topic cap every topic
            # shares the unlabelled set, so this cache stays one entry per partition number.
            base = self._messaging("poll", topic)
            found = self._partition_attrs.get((id(base), partition))
            if found is not None and found[0] is base:
                labelled = found[1]
            else:
                if len(self._partition_attrs) >= _MAX_SERIES:
                    self._partition_attrs.clear()
                labelled = {**base, msg.MESSAGING_DESTINATION_PARTITION_ID: str(partition)}
                self._partition_attrs[(id(base), partition)] = (base, labelled)
            self._m.lag(records, labelled)
            self._m.time_lag(seconds, labelled)

    def _timings(self, r: Request, attrs: dict[str, Any]) -> None:
        """The opt-in per-key request histograms (``detailed_timings``)."""
        self._m.write_wait(r.write_wait_ns / 1e9, attrs)
        self._m.time_to_write(r.time_to_write_ns / 1e9, attrs)
        if r.bytes_read or r.read_err is not None:
            self._m.read_wait(r.read_wait_ns / 1e9, attrs)
            self._m.time_to_read(r.time_to_read_ns / 1e9, attrs)
        self._m.e2e(r.duration_ns / 1e9, attrs)

    def on_batches_handed_out(self, handouts: Sequence[HandOut]) -> None:
        """Hand-outs given by hand (the request log folds them as they are made instead): records
        consumed, per topic, recorded at once."""
        for h in handouts:
            self.kafkahooks_fold_handout(h.topic, h.partition, h.handed, h.entered_ns, h.batch, None)
        self.kafkahooks_folded()

    def kafkahooks_fold_handout(
        self, topic: str, partition: int, count: int, at_ns: int, batch: RawBatch, token: Any
    ) -> None:
        """One batch's records handed out (the application's thread, as the hand-out is made):
        added to this topic's count at once, which :meth:`kafkahooks_folded` records on the
        worker's next pass; one number per topic waits, not one hand-out per batch."""
        with self._folding_lock:
            folded = self._folded
            folded[topic] = folded.get(topic, 0) + count

    def kafkahooks_folded(self) -> None:
        """The worker's pass: the records consumed per topic since the last one."""
        with self._folding_lock:
            folded, self._folded = self._folded, {}
        if folded:
            self._fresh()
            for topic, records in folded.items():
                self._count(self._m.consumed, records, self._messaging("poll", topic))
            self._add_counts()

    def on_connection_events(self, events: Sequence[ConnectionEvent]) -> None:
        self._fresh()
        for e in events:
            attrs = self._broker(e.meta)
            if e.kind == "connect":
                if e.err is None:
                    self._count(self._m.connects, 1, attrs)
                else:
                    self._count(
                        self._m.connect_errors, 1, {**attrs, error_attributes.ERROR_TYPE: type(e.err).__qualname__}
                    )
            elif e.kind == "disconnect":
                self._count(self._m.disconnects, 1, attrs)
            elif e.kind == "throttle":
                self._m.throttle(e.value / 1e9, attrs)
        self._add_counts()


class _BrokerSums:
    """One pass's sums for one broker, key and error series."""

    __slots__ = ("attrs", "read", "read_errors", "write_errors", "written")

    def __init__(self, attrs: dict[str, Any]) -> None:
        self.attrs = attrs
        self.written = self.read = self.write_errors = self.read_errors = 0

    def add(self, r: Request, error: str | None) -> None:
        self.written += r.bytes_written
        self.read += r.bytes_read
        if error is not None:
            if r.write_err is not None:
                self.write_errors += 1
            else:
                self.read_errors += 1


class _TopicSums:
    """One pass's sums for one operation and topic series."""

    __slots__ = ("attrs", "compressed", "records", "sent", "uncompressed")

    def __init__(self, attrs: dict[str, Any]) -> None:
        self.attrs = attrs
        self.records = self.uncompressed = self.compressed = self.sent = 0

    def add(self, info: BatchInfo | RawBatch, sent: bool) -> None:
        """A produced batch's :class:`BatchInfo` or a fetched one's :data:`RawBatch` (by position)."""
        count = info[NUM_RECORDS]
        self.records += count
        uncompressed = info[UNCOMPRESSED_BYTES]
        if uncompressed >= 0:
            self.uncompressed += uncompressed
        self.compressed += info[COMPRESSED_BYTES]
        if sent:
            self.sent += count


class _PassSums:
    """What one pass of ``on_requests_finished`` adds up before its SDK calls. Series are keyed by
    the identity of their (cached) attribute sets."""

    __slots__ = ("_wall_offset", "brokers", "lags", "topics")

    def __init__(self) -> None:
        self.brokers: dict[int, _BrokerSums] = {}
        self.topics: dict[int, _TopicSums] = {}
        self.lags: dict[tuple[str, int], tuple[int, float]] = {}
        """The pass's last lag reading per partition."""
        self._wall_offset: int | None = None

    def broker(self, attrs: dict[str, Any]) -> _BrokerSums:
        found = self.brokers.get(id(attrs))
        if found is None:
            found = self.brokers[id(attrs)] = _BrokerSums(attrs)
        return found

    def topic(self, attrs: dict[str, Any]) -> _TopicSums:
        found = self.topics.get(id(attrs))
        if found is None:
            found = self.topics[id(attrs)] = _TopicSums(attrs)
        return found

    def wall_offset(self) -> int:
        """The wall clock minus the monotonic one, read once per pass (lag from monotonic stamps)."""
        if self._wall_offset is None:
            self._wall_offset = _clock.time_ns() - _clock.monotonic_ns()
        return self._wall_offset
