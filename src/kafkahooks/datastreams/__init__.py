"""Data-stream monitoring per batch, in Datadog's pathway format.

End-to-end latency across services: every checkpoint (a produce, a consume) measures the edge
latency since the previous checkpoint of its pathway and the latency since the pathway's origin,
propagated in the ``dd-pathway-ctx-base64`` header. kafkahooks checkpoints once per producer
batch and once per consumed batch group, weighted by record counts, so message counts stay right
while the work is done per batch. See :mod:`kafkahooks.datastreams._hooks` for the rules.

>>> streams = DataStreams(service="enricher", env="prod")
>>> consumer = AIOKafkaConsumer("orders", group_id="g", data_streams=streams, ...)
>>> producer = AIOKafkaProducer(data_streams=streams, ...)   # continues the consumed pathways

``tracing="hooks"`` enables a default :class:`DataStreams` (:func:`default`) when none is given.
"""

from kafkahooks.datastreams._current import current_pathway, merge_contexts, reset_pathway, set_pathway, use_pathway
from kafkahooks.datastreams._exporters import (
    DatadogAgentExporter,
    JsonLinesExporter,
    OtelMetricsExporter,
    agent_payload,
    hash_hex,
)
from kafkahooks.datastreams._hooks import DataStreamHooks, data_stream_hooks
from kafkahooks.datastreams._pathway import (
    HEADER,
    LEGACY_HEADER,
    PathwayContext,
    decode,
    decode_b64,
    decode_str,
    encode_str,
    fnv1_64,
    from_headers,
    node_hash,
    pathway_hash,
)
from kafkahooks.datastreams._stats import Point, StatsBucket, StatsGroup
from kafkahooks.datastreams._streams import DataStreams, default


def set_checkpoint(edge_tags: list[str] | tuple[str, ...], streams: DataStreams | None = None) -> PathwayContext:
    """A manual checkpoint (for transports kafkahooks does not wrap), continuing the current pathway.

    Records it with ``streams`` (default: :func:`default`), makes its outgoing context current and
    returns it, to carry on with :func:`encode_str`.
    """
    ds = streams or default()
    ctx = ds.checkpoint(edge_tags, current_pathway())
    set_pathway(ctx)
    return ctx


def decode_errors() -> int:
    """Malformed pathway headers seen so far in this process (each meant: a new origin)."""
    from kafkahooks.datastreams import _pathway

    return _pathway.decode_errors.value


__all__ = [
    "HEADER",
    "LEGACY_HEADER",
    "DataStreamHooks",
    "DataStreams",
    "DatadogAgentExporter",
    "JsonLinesExporter",
    "OtelMetricsExporter",
    "PathwayContext",
    "Point",
    "StatsBucket",
    "StatsGroup",
    "agent_payload",
    "current_pathway",
    "data_stream_hooks",
    "decode",
    "decode_b64",
    "decode_errors",
    "decode_str",
    "default",
    "encode_str",
    "fnv1_64",
    "from_headers",
    "hash_hex",
    "merge_contexts",
    "node_hash",
    "pathway_hash",
    "reset_pathway",
    "set_checkpoint",
    "set_pathway",
    "use_pathway",
]
