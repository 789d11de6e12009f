"""OpenTelemetry metrics from the broker and batch hooks (what kprom and kotel's meter give franz-go).

On the I/O path each hook hands a small tuple to a bounded buffer (dropped and counted when
full); the export worker records into instruments created once, with attribute dicts cached per
(broker, key) and per topic, so no hook call builds attributes or touches the SDK.

Request timings are labelled by request key (``kafkahooks.request.key``: ``Produce``, ``Fetch``...)
so Fetch long-polls never pollute Produce latency, kprom's mistake. Label cardinality is bounded
and chosen by :class:`MetricLabels`.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry import metrics
from opentelemetry.semconv._incubating.attributes import messaging_attributes as msg
from opentelemetry.semconv._incubating.metrics import messaging_metrics
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.semconv.schemas import Schemas

from kafkahooks._identity import ClientIdentity
from kafkahooks._version import __version__
from kafkahooks.export import BoundedBuffer, worker
from kafkahooks.hooks import ApiKey, BrokerE2E, BrokerMeta, FetchBatchMetrics, ProduceBatchMetrics, key_name

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

_PRODUCE = int(ApiKey.PRODUCE)
_FETCH = int(ApiKey.FETCH)


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
    detailed_timings: bool = False
    """Also record write_wait, time_to_write and read_wait per key (three more histogram points per
    request; kprom makes its equivalents opt-in too). Duration and time_to_read are always recorded."""


class _Sink:
    def __init__(self, plugin: MetricsHooks, capacity: int) -> None:
        self.name = f"metrics:{plugin.identity.role}"
        self._plugin = weakref.ref(plugin)
        self.buffer: BoundedBuffer[tuple[Any, ...]] = BoundedBuffer(self.name, capacity, worker().wake)

    def process(self) -> None:
        plugin = self._plugin()
        items = self.buffer.drain()
        if plugin is not None:
            for item in items:
                plugin._record(item)
            plugin._add_counts()

    def forget(self) -> None:
        self.buffer.clear()


class MetricsHooks:
    """Broker, batch and messaging metrics for one wrapped client (see the module docs)."""

    kafkahooks_inline = True
    """Only queues work for the export worker: called directly, never timed or offloaded."""

    def __init__(
        self,
        identity: ClientIdentity | None = None,
        *,
        meter_provider: Any = None,
        labels: MetricLabels | None = None,
        capacity: int = 8192,
    ) -> None:
        self._own_identity = identity is None
        self.identity = identity or ClientIdentity()
        self.labels = labels or MetricLabels()
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(
            "kafkahooks", __version__, schema_url=Schemas.V1_44_0.value
        )
        from kafkahooks.metrics._self import install_self_metrics

        install_self_metrics(meter_provider)

        def histogram(
            name: str, description: str, unit: str = "s", buckets: tuple[float, ...] = REQUEST_BUCKETS_S
        ) -> Any:
            return meter.create_histogram(
                name, unit=unit, description=description, explicit_bucket_boundaries_advisory=list(buckets)
            )

        def count(name: str, description: str, unit: str) -> Any:
            return meter.create_counter(name, unit=unit, description=description)

        self._write_wait = histogram("kafkahooks.request.write_wait", "From request creation to the start of its write")
        self._time_to_write = histogram("kafkahooks.request.time_to_write", "The write of a request")
        self._read_wait = histogram("kafkahooks.request.read_wait", "Response queued behind earlier responses")
        self._time_to_read = histogram("kafkahooks.request.time_to_read", "From read start to the full response")
        self._e2e = histogram("kafkahooks.request.duration", "time_to_write + read_wait + time_to_read")
        self._throttle = histogram("kafkahooks.broker.throttle", "Throttle time the broker asked for")
        self._bytes_written = count("kafkahooks.broker.bytes_written", "Request bytes written", "By")
        self._bytes_read = count("kafkahooks.broker.bytes_read", "Response bytes read", "By")
        self._write_errors = count("kafkahooks.broker.write_errors", "Requests whose write failed", "{request}")
        self._read_errors = count("kafkahooks.broker.read_errors", "Requests whose response was lost", "{request}")
        self._connects = count("kafkahooks.broker.connects", "Successful connections", "{connection}")
        self._connect_errors = count("kafkahooks.broker.connect_errors", "Failed connection attempts", "{connection}")
        self._disconnects = count("kafkahooks.broker.disconnects", "Connections closed", "{connection}")
        self._records = count("kafkahooks.batch.records", "Records in produced or fetched batches", "{record}")
        self._uncompressed = count("kafkahooks.batch.uncompressed_bytes", "Batch records, uncompressed", "By")
        self._compressed = count("kafkahooks.batch.compressed_bytes", "Batch records as sent", "By")
        self._batch_size = histogram(
            "kafkahooks.batch.size", "Records per partition batch", unit="{record}", buckets=BATCH_BUCKETS
        )
        self._operation = histogram(
            messaging_metrics.MESSAGING_CLIENT_OPERATION_DURATION,
            "Duration of messaging operation initiated by a producer or consumer client",
            buckets=DURATION_BUCKETS_S,
        )
        self._sent = count(messaging_metrics.MESSAGING_CLIENT_SENT_MESSAGES, "Messages a producer sent", "{message}")
        self._consumed = count(
            messaging_metrics.MESSAGING_CLIENT_CONSUMED_MESSAGES, "Messages delivered to the application", "{message}"
        )
        self._counts: dict[tuple[Any, int], tuple[dict[str, Any], int]] = {}
        self._consumed_pending: dict[str, int] = {}
        self._consumed_lock = threading.Lock()
        self._broker_attrs: dict[BrokerMeta, dict[str, Any]] = {}
        self._key_attrs: dict[tuple[BrokerMeta, int, str | None], dict[str, Any]] = {}
        self._topic_attrs: dict[tuple[str, str, str | None], dict[str, Any]] = {}
        self.sink = _Sink(self, capacity)
        worker().register(self.sink)

    @property
    def dropped(self) -> int:
        """Metric points dropped because the buffer was full."""
        return self.sink.buffer.dropped

    # -- hooks: the I/O path ----------------------------------------------------------------------

    def bind_identity(self, identity: ClientIdentity) -> None:
        """Name the client this plugin serves, when it was built without an identity (``hooks=[MetricsHooks()]``)."""
        if self._own_identity:
            self.identity = identity
            self.sink.buffer.offer(("reset",))

    def on_broker_connect(self, meta: BrokerMeta, init_ns: int, err: BaseException | None) -> None:
        self.sink.buffer.offer(("connect", meta, err))

    def on_broker_disconnect(self, meta: BrokerMeta) -> None:
        self.sink.buffer.offer(("disconnect", meta))

    def on_broker_e2e(self, meta: BrokerMeta, key: int, e2e: BrokerE2E) -> None:
        self.sink.buffer.offer(("e2e", meta, key, e2e))

    def on_broker_throttle(self, meta: BrokerMeta, interval_ns: int, throttled_after_response: bool) -> None:
        self.sink.buffer.offer(("throttle", meta, interval_ns))

    def on_produce_batch_written(self, meta: BrokerMeta, topic: str, partition: int, m: ProduceBatchMetrics) -> None:
        self.sink.buffer.offer(("batch", "produce", topic, m))

    def on_fetch_batch_read(self, meta: BrokerMeta, topic: str, partition: int, m: FetchBatchMetrics) -> None:
        self.sink.buffer.offer(("batch", "fetch", topic, m))

    def on_records_polled(self, topic: str, partition: int, records: Any) -> None:
        # Called per record by getone/async-for: add to a running count instead of queueing an item.
        n = len(records)
        with self._consumed_lock:
            self._consumed_pending[topic] = self._consumed_pending.get(topic, 0) + n

    # -- the export worker ------------------------------------------------------------------------

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
        cache_key = (meta, key, error)
        attrs = self._key_attrs.get(cache_key)
        if attrs is None:
            attrs = {**self._broker(meta), "kafkahooks.request.key": key_name(key)}
            if error:
                attrs[error_attributes.ERROR_TYPE] = error
            self._key_attrs[cache_key] = attrs
        return attrs

    def _messaging(self, operation: str, topic: str | None, error: str | None = None) -> dict[str, Any]:
        topic = topic if self.labels.topic else None
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

    def _count(self, counter: Any, amount: int, attrs: dict[str, Any]) -> None:
        """Sum counter increments over a drain: one SDK call per (counter, labels), not per event."""
        key = (counter, id(attrs))
        found = self._counts.get(key)
        self._counts[key] = (attrs, amount + (found[1] if found else 0))

    def _add_counts(self) -> None:
        with self._consumed_lock:
            consumed, self._consumed_pending = self._consumed_pending, {}
        for topic, n in consumed.items():
            self._count(self._consumed, n, self._messaging("poll", topic))
        counts, self._counts = self._counts, {}
        for (counter, _), (attrs, amount) in counts.items():
            counter.add(amount, attrs)

    def _record(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "reset":  # the identity changed: cached attribute sets are stale
            self._broker_attrs.clear()
            self._key_attrs.clear()
            self._topic_attrs.clear()
        elif kind == "e2e":
            _, meta, key, e2e = item
            error = type(e2e.err).__qualname__ if e2e.err is not None else None
            attrs = self._keyed(meta, key, error)
            responded = e2e.bytes_read or e2e.read_err is not None
            if self.labels.detailed_timings:
                self._write_wait.record(e2e.write_wait_ns / 1e9, attrs)
                self._time_to_write.record(e2e.time_to_write_ns / 1e9, attrs)
                if responded:
                    self._read_wait.record(e2e.read_wait_ns / 1e9, attrs)
            if responded:
                self._time_to_read.record(e2e.time_to_read_ns / 1e9, attrs)
            self._e2e.record(e2e.duration_e2e_ns / 1e9, attrs)
            self._count(self._bytes_written, e2e.bytes_written, attrs)
            if e2e.bytes_read:
                self._count(self._bytes_read, e2e.bytes_read, attrs)
            if e2e.write_err is not None:
                self._count(self._write_errors, 1, attrs)
            elif e2e.read_err is not None:
                self._count(self._read_errors, 1, attrs)
            if key == _PRODUCE:
                self._operation.record(e2e.duration_e2e_ns / 1e9, self._messaging("send", None, error))
            elif key == _FETCH:
                self._operation.record(e2e.time_to_read_ns / 1e9, self._messaging("poll", None, error))
        elif kind == "batch":
            _, direction, topic, m = item
            attrs = self._messaging("send" if direction == "produce" else "fetch", topic)
            self._count(self._records, m.num_records, attrs)
            if m.uncompressed_bytes >= 0:
                self._count(self._uncompressed, m.uncompressed_bytes, attrs)
            self._count(self._compressed, m.compressed_bytes, attrs)
            self._batch_size.record(m.num_records, attrs)
            if direction == "produce":
                self._count(self._sent, m.num_records, attrs)
        elif kind == "connect":
            _, meta, err = item
            if err is None:
                self._count(self._connects, 1, self._broker(meta))
            else:
                self._connect_errors.add(1, {**self._broker(meta), error_attributes.ERROR_TYPE: type(err).__qualname__})
        elif kind == "disconnect":
            self._count(self._disconnects, 1, self._broker(item[1]))
        elif kind == "throttle":
            self._throttle.record(item[2] / 1e9, self._broker(item[1]))
