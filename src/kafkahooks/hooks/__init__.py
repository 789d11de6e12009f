"""The hook model: franz-go's broker hooks for Python Kafka clients.

Protocols (one per event), the types hooks receive, the dispatcher that calls them, and the
request-key filter. See :mod:`kafkahooks.hooks._protocols` for each event's contract.
"""

from kafkahooks.hooks._dispatch import DEFAULT_BUDGET_MS, HookDispatcher, flatten_hooks
from kafkahooks.hooks._filter import ALL_KEYS, TRACING_KEYS, KeyFilter
from kafkahooks.hooks._protocols import (
    ALL_HOOK_PROTOCOLS,
    HOOK_METHODS,
    BrokerConnectHook,
    BrokerDisconnectHook,
    BrokerE2EHook,
    BrokerReadHook,
    BrokerThrottleHook,
    BrokerWriteHook,
    ClientClosedHook,
    FetchBatchReadHook,
    FetchRecordBufferedHook,
    FetchRecordUnbufferedHook,
    NewClientHook,
    OffsetsCommittedHook,
    ProduceBatchHeadersHook,
    ProduceBatchWrittenHook,
    ProduceRecordBufferedHook,
    ProduceRecordUnbufferedHook,
    RecordsPolledHook,
)
from kafkahooks.hooks._types import (
    ApiKey,
    BrokerE2E,
    BrokerMeta,
    Compression,
    ConnectionClosed,
    FetchBatchMetrics,
    Headers,
    ProduceBatchMetrics,
    ProduceRecord,
    key_name,
)

__all__ = [
    "ALL_HOOK_PROTOCOLS",
    "ALL_KEYS",
    "DEFAULT_BUDGET_MS",
    "HOOK_METHODS",
    "TRACING_KEYS",
    "ApiKey",
    "BrokerConnectHook",
    "BrokerDisconnectHook",
    "BrokerE2E",
    "BrokerE2EHook",
    "BrokerMeta",
    "BrokerReadHook",
    "BrokerThrottleHook",
    "BrokerWriteHook",
    "ClientClosedHook",
    "Compression",
    "ConnectionClosed",
    "FetchBatchMetrics",
    "FetchBatchReadHook",
    "FetchRecordBufferedHook",
    "FetchRecordUnbufferedHook",
    "HookDispatcher",
    "Headers",
    "KeyFilter",
    "NewClientHook",
    "OffsetsCommittedHook",
    "ProduceBatchHeadersHook",
    "ProduceBatchMetrics",
    "ProduceBatchWrittenHook",
    "ProduceRecord",
    "ProduceRecordBufferedHook",
    "ProduceRecordUnbufferedHook",
    "RecordsPolledHook",
    "flatten_hooks",
    "key_name",
]
