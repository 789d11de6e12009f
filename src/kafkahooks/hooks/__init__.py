"""The hook model: franz-go's broker hooks for Python Kafka clients, and everything needed to write
and type a hook or plugin, in one import.

``from kafkahooks.hooks import Hook, BrokerE2EHook, BrokerMeta, ...``: the hook protocols (one per
event, franz-go's names; :mod:`kafkahooks.hooks._protocols` has each event's contract), the table
of events they come from, the value types the hooks receive, the dispatcher that calls them, the
request-key filter, and the optional attributes a hook object can set to change how it is called:

- ``request_keys``: a :class:`KeyFilter`; the broker write/read/end-to-end hooks of this object are
  called for those request keys only (default: every key).
- ``kafkahooks_inline = True``: always call this object on the I/O path, untimed, never moved to
  its own thread (for hooks that only append to a queue; see ``hook_budget_ms``).
- ``request_needs``: a :class:`RequestNeeds`, for the batched path (``on_requests_finished``
  and the hand-out events): the request keys it gets and what the taps collect for it (partition
  batches, first-record headers, commits, high watermarks). Without it: request records alone,
  for ``request_keys``.
- ``kafkahooks_raw_batches = True``: ``on_fetch_batch_entered`` gets the batch as a plain tuple
  (:data:`~kafkahooks.hooks._records.RawBatch`: :class:`BatchInfo`'s fields by position, the codec
  as its number, the header pairs laid flat) instead of a :class:`BatchInfo` built for it.
  It exists for kafkahooks' own plugins: plain tuples of numbers, strings and bytes are what the
  garbage collector stops tracking, and a consumer of small batches keeps thousands of them at
  once (benchmarks/NOTES.md, *The collector, for small batches*).
- ``kafkahooks_fold_handout(topic, partition, count, at_ns, batch, token)``: with
  ``on_batches_handed_out``, called on the application's thread as each hand-out is made (its
  own token, or None), instead of the hand-out waiting for the export worker; and
  ``kafkahooks_folded()``, if it has one, on each of the worker's passes. For kafkahooks' own
  plugins, which keep what a hand-out adds as numbers (a packed row, a count per topic): a
  hand-out that waits for the worker leaves small blocks of CPython's allocator among the
  client's records, and the client's own allocations slow down (benchmarks/NOTES.md, *A consumer's batches in
  the allocator*). Every hook that does not fold gets :class:`HandOut` s on the worker, as before.
- ``bind_identity(identity)``: called once, when the client is built, with the
  :class:`ClientIdentity` (role, client id, group, bootstrap servers, cluster id once known) of
  the client the hook was given to, so one class can name the client it serves.

:class:`ConfiguredHook` spells these out for type checkers; none of them is required.
"""

from kafkahooks._identity import ClientIdentity
from kafkahooks.hooks._dispatch import DEFAULT_BUDGET_MS, HookDispatcher
from kafkahooks.hooks._filter import ALL_KEYS, TRACING_KEYS, KeyFilter
from kafkahooks.hooks._protocols import (
    ALL_HOOK_PROTOCOLS,
    EVENTS,
    HOOK_METHODS,
    BatchesHandedOutHook,
    BrokerConnectHook,
    BrokerDisconnectHook,
    BrokerE2EHook,
    BrokerReadHook,
    BrokerThrottleHook,
    BrokerWriteHook,
    ClientClosedHook,
    ConfiguredHook,
    ConnectionEventsHook,
    Event,
    FetchBatchEnteredHook,
    FetchBatchReadHook,
    FetchRecordBufferedHook,
    FetchRecordUnbufferedHook,
    Hook,
    NewClientHook,
    OffsetsCommittedHook,
    PollEndedHook,
    ProduceBatchHeadersHook,
    ProduceBatchWrittenHook,
    ProduceRecordBufferedHook,
    ProduceRecordHeadersHook,
    ProduceRecordUnbufferedHook,
    RecordsPolledHook,
    RequestsFinishedHook,
)
from kafkahooks.hooks._records import BatchInfo, ConnectionEvent, HandOut, Request
from kafkahooks.hooks._requests import RequestNeeds
from kafkahooks.hooks._types import (
    ApiKey,
    BrokerE2E,
    BrokerMeta,
    ClientClosed,
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
    "EVENTS",
    "HOOK_METHODS",
    "TRACING_KEYS",
    "ApiKey",
    "BatchInfo",
    "BatchesHandedOutHook",
    "BrokerConnectHook",
    "BrokerDisconnectHook",
    "BrokerE2E",
    "BrokerE2EHook",
    "BrokerMeta",
    "BrokerReadHook",
    "BrokerThrottleHook",
    "BrokerWriteHook",
    "ClientClosed",
    "ClientClosedHook",
    "ClientIdentity",
    "Compression",
    "ConfiguredHook",
    "ConnectionClosed",
    "ConnectionEvent",
    "ConnectionEventsHook",
    "Event",
    "FetchBatchEnteredHook",
    "FetchBatchMetrics",
    "FetchBatchReadHook",
    "FetchRecordBufferedHook",
    "FetchRecordUnbufferedHook",
    "HandOut",
    "Headers",
    "Hook",
    "HookDispatcher",
    "KeyFilter",
    "NewClientHook",
    "OffsetsCommittedHook",
    "PollEndedHook",
    "ProduceBatchHeadersHook",
    "ProduceBatchMetrics",
    "ProduceBatchWrittenHook",
    "ProduceRecord",
    "ProduceRecordBufferedHook",
    "ProduceRecordHeadersHook",
    "ProduceRecordUnbufferedHook",
    "RecordsPolledHook",
    "Request",
    "RequestNeeds",
    "RequestsFinishedHook",
    "key_name",
]
