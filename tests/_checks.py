"""Assertions shared by the kafka-python and aiokafka integration tests."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

from kafkahooks.hooks import Compression
from kafkahooks.testing import HookEvent, RecordingHook


def assert_batches_account_for_every_record(
    produced: list[HookEvent], fetched: list[HookEvent], records: int, codec: Compression, partitions: int
) -> None:
    """Produce and fetch batch events count every record once, with codec, sizes and offsets that agree."""
    for batches in (produced, fetched):
        assert records == sum(e.metrics.num_records for e in batches)
        assert set(range(partitions)) == {e.partition for e in batches}
        assert {codec} == {e.metrics.compression for e in batches}
        for e in batches:
            if codec is Compression.NONE:
                assert e.metrics.compressed_bytes == e.metrics.uncompressed_bytes
            else:
                assert e.metrics.compressed_bytes < e.metrics.uncompressed_bytes
        for partition in range(partitions):
            spans = sorted((e.metrics.base_offset, e.metrics.num_records) for e in batches if e.partition == partition)
            assert 0 == spans[0][0]
            assert all(base + count == nxt for (base, count), (nxt, _) in itertools.pairwise(spans))
    assert sum(e.metrics.uncompressed_bytes for e in produced) == sum(e.metrics.uncompressed_bytes for e in fetched)
    assert all(e.metrics.last_offset == e.metrics.base_offset + e.metrics.num_records - 1 for e in fetched)


def assert_reads_follow_writes_and_timings_are_sane(recorder: RecordingHook) -> None:
    """Per broker and key, no read before its write; every end-to-end has non-negative parts."""
    outstanding: Counter[tuple[str, int]] = Counter()
    for event in recorder.events:
        if event.event == "broker_write":
            outstanding[(event.meta.name, event.key)] += 1
        elif event.event == "broker_read":
            outstanding[(event.meta.name, event.key)] -= 1
            assert outstanding[(event.meta.name, event.key)] >= 0, "a read came before its write"
    for event in recorder.of("broker_e2e"):
        e2e: Any = event.e2e
        assert min(e2e.write_wait_ns, e2e.time_to_write_ns, e2e.read_wait_ns, e2e.time_to_read_ns) >= 0
        assert e2e.duration_e2e_ns == e2e.time_to_write_ns + e2e.read_wait_ns + e2e.time_to_read_ns
