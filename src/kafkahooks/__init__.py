"""kafkahooks: franz-go style broker hooks for Python Kafka clients.

Swap an import (``from kafkahooks.aiokafka import AIOKafkaProducer``), add ``hooks=[...]`` or
``tracing="hooks"``, and see every request each broker connection carries, with exact timings,
at a cost that does not grow with the number of records.
"""

from kafkahooks._config import TRACING_ENV, TRACING_MODES, TracingMode, tracing_mode
from kafkahooks._version import __version__
from kafkahooks.hooks import (
    ALL_KEYS,
    TRACING_KEYS,
    ApiKey,
    BrokerE2E,
    BrokerMeta,
    Compression,
    FetchBatchMetrics,
    HookDispatcher,
    KeyFilter,
    ProduceBatchMetrics,
    ProduceRecord,
    key_name,
)

__all__ = [
    "ALL_KEYS",
    "TRACING_ENV",
    "TRACING_KEYS",
    "TRACING_MODES",
    "ApiKey",
    "BrokerE2E",
    "BrokerMeta",
    "Compression",
    "FetchBatchMetrics",
    "FlightRecorder",
    "HookDispatcher",
    "KeyFilter",
    "ProduceBatchMetrics",
    "ProduceRecord",
    "TracingMode",
    "__version__",
    "key_name",
    "tracing_mode",
]


def __getattr__(name: str) -> object:  # kafkahooks.FlightRecorder without loading it on import
    if name == "FlightRecorder":
        from kafkahooks.latency import FlightRecorder

        return FlightRecorder
    raise AttributeError(f"module 'kafkahooks' has no attribute {name!r}")
