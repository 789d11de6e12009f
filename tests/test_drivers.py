"""The readers the other tests compare against: they must return every record a topic holds, no
more and no fewer, without waiting out a timeout to know they are done."""

from __future__ import annotations

from collections.abc import Callable

import kafka

from kafkahooks.kafka import KafkaConsumer
from tests._drivers import iterate_to_end, plain_consume

BATCHES = [(0, 5), (0, 1), (2, 3), (0, 4)]
"""``(partition, records)`` sent and flushed one after another: several batches on partition 0,
one on partition 2, none on partition 1."""


def fill(bootstrap: str, topic: str) -> list[tuple[int, bytes]]:
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    sent = []
    for partition, count in BATCHES:
        for _ in range(count):
            value = b"v%d" % len(sent)
            producer.send(topic, value, partition=partition)
            sent.append((partition, value))
        producer.flush()
    producer.close()
    return sent


def test_plain_consume_reads_every_batch_of_every_partition(bootstrap: str, make_topic: Callable[..., str]) -> None:
    """Partitions with several batches, one and none: all read, though Tansu 0.6 answers
    ListOffsets' latest with the last batch's base offset plus one (here 7 for partition 0's 10
    records: the readers go by the fetches' high watermark instead)."""
    topic = make_topic(3)
    sent = fill(bootstrap, topic)
    assert sorted(sent) == sorted((r.partition, r.value) for r in plain_consume(bootstrap, topic, partitions=3))
    consumer = kafka.KafkaConsumer(bootstrap_servers=bootstrap)
    end = consumer.end_offsets([kafka.TopicPartition(topic, 0)])[kafka.TopicPartition(topic, 0)]
    consumer.close()
    assert end in (7, 10)  # 10 on Kafka


def test_iterate_to_end_yields_every_record_then_stops(bootstrap: str, make_topic: Callable[..., str]) -> None:
    """Bare and wrapped, from the start and from the middle of a batch; each stops at the high
    watermark well inside its ``consumer_timeout_ms`` (a reader that waited it out would read the
    same records, so the timeout here is longer than the test's own limit would allow)."""
    topic = make_topic(3)
    sent = fill(bootstrap, topic)
    for consumer_class in (kafka.KafkaConsumer, KafkaConsumer):
        consumer = consumer_class(
            bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=600_000
        )
        consumer.assign([kafka.TopicPartition(topic, p) for p in range(3)])
        assert sorted(sent) == sorted((r.partition, r.value) for r in iterate_to_end(consumer))
        consumer.seek(kafka.TopicPartition(topic, 0), 3)
        consumer.seek(kafka.TopicPartition(topic, 2), 0)
        expected = [s for s in sent if s[0] == 2] + [s for s in sent if s[0] == 0][3:]
        assert sorted(expected) == sorted((r.partition, r.value) for r in iterate_to_end(consumer))
        consumer.close()
