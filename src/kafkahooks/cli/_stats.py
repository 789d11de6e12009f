"""A hook that summarises requests per key, for the command line's reports."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

from kafkahooks.hooks import BrokerE2E, BrokerMeta, FetchBatchMetrics, ProduceBatchMetrics, key_name

_MAX_SAMPLES = 200_000


@dataclass
class KeyStats:
    requests: int = 0
    errors: int = 0
    bytes_written: int = 0
    bytes_read: int = 0
    write_wait_ns: list[int] = field(default_factory=list)
    time_to_write_ns: list[int] = field(default_factory=list)
    read_wait_ns: list[int] = field(default_factory=list)
    time_to_read_ns: list[int] = field(default_factory=list)


@dataclass
class BatchStats:
    batches: int = 0
    records: int = 0
    uncompressed_bytes: int = 0
    compressed_bytes: int = 0


def percentile(samples: list[int], q: float) -> float:
    """The q-quantile (0..1) of ``samples`` by nearest rank; 0 for none."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


class RequestStats:
    """Counts requests, bytes and timings per request key, and batches per direction."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.keys: dict[str, KeyStats] = defaultdict(KeyStats)
        self.produced = BatchStats()
        self.fetched = BatchStats()
        self.connects = 0

    def on_broker_connect(self, meta: BrokerMeta, init_ns: int, err: BaseException | None) -> None:
        with self._lock:
            self.connects += 1

    def on_broker_e2e(self, meta: BrokerMeta, key: int, e2e: BrokerE2E) -> None:
        with self._lock:
            stats = self.keys[key_name(key)]
            stats.requests += 1
            stats.errors += e2e.err is not None
            stats.bytes_written += e2e.bytes_written
            stats.bytes_read += e2e.bytes_read
            if len(stats.write_wait_ns) < _MAX_SAMPLES:
                stats.write_wait_ns.append(e2e.write_wait_ns)
                stats.time_to_write_ns.append(e2e.time_to_write_ns)
                stats.read_wait_ns.append(e2e.read_wait_ns)
                stats.time_to_read_ns.append(e2e.time_to_read_ns)

    def _batch(self, into: BatchStats, metrics: ProduceBatchMetrics | FetchBatchMetrics) -> None:
        with self._lock:
            into.batches += 1
            into.records += metrics.num_records
            into.uncompressed_bytes += max(metrics.uncompressed_bytes, 0)
            into.compressed_bytes += metrics.compressed_bytes

    def on_produce_batch_written(
        self, meta: BrokerMeta, topic: str, partition: int, metrics: ProduceBatchMetrics
    ) -> None:
        self._batch(self.produced, metrics)

    def on_fetch_batch_read(self, meta: BrokerMeta, topic: str, partition: int, metrics: FetchBatchMetrics) -> None:
        self._batch(self.fetched, metrics)
