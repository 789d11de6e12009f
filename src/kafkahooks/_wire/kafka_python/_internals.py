"""What the kafka-python adapter relies on in kafka-python 3.0.x, checked when the first wrapped
client is built (:func:`check_internals`): a release that moves any of it leaves the clients bare,
with one warning, never broken."""

from __future__ import annotations

import inspect

import kafka
from kafka.net.connection import KafkaConnection
from kafka.net.manager import KafkaConnectionManager
from kafka.protocol.parser import KafkaProtocol

from kafkahooks._symbols import lacks
from kafkahooks._wire._shared import missing_members

VERIFIED_VERSIONS = ">=3.0,<3.1"


def check_internals() -> list[str]:
    """Names this adapter relies on that the installed kafka-python no longer has (empty = fine)."""
    from kafka.consumer.fetcher import Fetcher
    from kafka.net import transport
    from kafka.producer.future import FutureRecordMetadata
    from kafka.producer.record_accumulator import RecordAccumulator
    from kafka.producer.sender import Sender
    from kafka.record.memory_records import MemoryRecordsBuilder

    missing = missing_members(
        {
            KafkaConnection: (
                "send_request",
                "_send_request",
                "connection_made",
                "connection_lost",
                "data_received",
                "_maybe_throttle",
                "_init_complete",
                "closed",
            ),
            KafkaConnectionManager: ("get_connection",),
            KafkaProtocol: ("send_request",),
            transport.KafkaTCPTransport: ("_sock_send",),
            transport.KafkaSSLTransport: ("_sock_send",),
            # Resending a batch the broker refused for our headers (see _rejected).
            RecordAccumulator: ("_tp_lock",),
            Sender: ("_dispatch_error", "_can_retry"),
            MemoryRecordsBuilder: ("buffer", "_buffer"),
            FutureRecordMetadata: ("_produce_future",),
        }
    )
    if lacks(RecordAccumulator, "_batches") or lacks(kafka.KafkaProducer, "_sender"):
        missing.append("kafka.producer RecordAccumulator._batches / KafkaProducer._sender")
    # Hand-outs per record batch: records built through self.PartitionRecords(..., on_drain=...),
    # walked with records.next_batch() and drained once.
    if lacks(Fetcher._parse_fetched_data, "PartitionRecords", "on_drain") or lacks(
        Fetcher.PartitionRecords._unpack_records, "next_batch"
    ):
        missing.append("kafka.consumer.fetcher.Fetcher.PartitionRecords (construction, on_drain, next_batch)")
    if "abort_on_new_batch" not in inspect.signature(RecordAccumulator.append).parameters:
        missing.append("kafka.producer.record_accumulator.RecordAccumulator.append(abort_on_new_batch=)")
    missing += lacks(kafka.KafkaProducer, "_accumulator", "_metadata")
    # The connection table a manager keeps, a connection's re-authentication state (no frame is
    # reported while it re-authenticates), the consumer's fetcher and client.
    missing += lacks(KafkaConnectionManager, "_conns")
    missing += lacks(KafkaConnection, "_reauth")
    missing += lacks(kafka.KafkaConsumer, "_fetcher", "_client")
    return missing
