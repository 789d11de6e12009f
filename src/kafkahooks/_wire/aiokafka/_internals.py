"""What the aiokafka adapter relies on in aiokafka 0.13-0.14, checked when the first wrapped client
is built (:func:`check_internals`): a release that moves any of it leaves the clients bare, with
one warning, never broken."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import aiokafka
from aiokafka.client import AIOKafkaClient
from aiokafka.conn import AIOKafkaConnection
from aiokafka.producer.message_accumulator import BatchBuilder, MessageAccumulator, MessageBatch

from kafkahooks._symbols import lacks
from kafkahooks._wire._shared import missing_members

VERIFIED_VERSIONS = ">=0.13,<0.15"


def check_internals() -> list[str]:
    """Names this adapter relies on that the installed aiokafka no longer has (empty = fine)."""
    from aiokafka.consumer import fetcher
    from aiokafka.protocol import commit as commit_protocol
    from aiokafka.protocol import fetch
    from aiokafka.protocol import produce as produce_protocol

    missing = missing_members(
        {
            AIOKafkaClient: ("_get_conn", "send"),
            MessageAccumulator: ("_append_batch", "add_message", "reenqueue"),
            MessageBatch: ("failure", "get_data_buffer"),
            BatchBuilder: ("append", "record_count", "_build"),
            AIOKafkaConnection: ("send", "_handle_frame", "close"),
            fetcher.Fetcher: ("_proc_fetch_request",),
        }
    )
    attributes: dict[type, tuple[str, ...]] = {
        AIOKafkaClient: ("cluster", "_conns", "_client_id", "_get_conn_lock_value"),
        # The batches a Produce request carries and the offsets a commit carries, read as sent.
        produce_protocol.ProduceRequest: ("_topics",),
        commit_protocol.OffsetCommitRequest: ("_consumer_group", "_topics"),
        AIOKafkaConnection: ("_requests", "_writer", "_reader"),
        BatchBuilder: ("_buffer", "_builder"),
        asyncio.StreamWriter: ("_transport",),
        aiokafka.AIOKafkaProducer: ("_message_accumulator", "client"),
        aiokafka.AIOKafkaConsumer: ("_client", "_fetcher"),
        # Hand-outs per record batch: the fetcher's result table (compared after each
        # ``_proc_fetch_request``), each result's partition records, and the iterator that reads
        # ``self._records`` (has_next/next_batch) only once iterated.
        fetcher.Fetcher: ("_records",),
        fetcher.FetchResult: ("_partition_records",),
        fetcher.PartitionRecords: ("_records", "next_fetch_offset", "_records_iterator"),
    }
    if lacks(fetcher.PartitionRecords._unpack_records, "has_next", "next_batch"):
        missing.append("aiokafka.consumer.fetcher.PartitionRecords._unpack_records (has_next/next_batch)")
    for name in dir(fetch):
        if name.startswith("FetchResponse_v"):
            partition_fields = _partition_fields(getattr(fetch, name))
            if partition_fields[:3] != ("partition", "error_code", "highwater_offset"):
                missing.append(f"aiokafka.protocol.fetch.{name} partitions (partition, error_code, highwater_offset)")
    if lacks(asyncio.StreamWriter.write, "_transport", "write"):
        missing.append("asyncio.StreamWriter.write (self._transport.write)")
    if lacks(BatchBuilder.append, "_builder", "append"):
        missing.append("aiokafka.producer.message_accumulator.BatchBuilder.append (self._builder.append)")
    if list(inspect.signature(aiokafka.cluster.ClusterMetadata.update_metadata).parameters)[:2] != ["self", "metadata"]:
        missing.append("aiokafka.cluster.ClusterMetadata.update_metadata(metadata)")
    for cls, names in attributes.items():
        missing += lacks(cls, *names)
    return missing


def _partition_fields(response: Any) -> tuple[str, ...]:
    """The field names of a Fetch response's per-partition entries (for :func:`check_internals`)."""
    topics = dict(zip(response.SCHEMA.names, response.SCHEMA.fields, strict=True))["topics"]
    partitions = dict(zip(topics.array_of.names, topics.array_of.fields, strict=True))["partitions"]
    return tuple(partitions.array_of.names)
