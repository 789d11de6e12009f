"""Tracing from broker hooks: back-dated request spans, per-batch trace context, process spans.

``tracing="hooks"`` on a wrapped client installs :class:`BrokerSpans`: one span per Produce request
written and per Fetch response read, synthesized from the hook timings, plus the application's
trace context on the first record of each producer batch, in every format of the application's
propagator (:class:`Carriers`: ``OTEL_PROPAGATORS``, W3C by default; B3 and Jaeger too).
``tracing="records"`` installs :class:`RecordSpans`, the classic per-record spans, for comparison.
Consumers continue a trace with :func:`record_context` / :func:`batch_contexts` /
:func:`record_baggage` and the :class:`process_span` helper.
"""

from __future__ import annotations

from kafkahooks.tracing._broker_spans import MAX_LINKS, BrokerSpans
from kafkahooks.tracing._carriers import Carriers, carriers, context_from_headers, record_baggage, record_context
from kafkahooks.tracing._context import BatchContexts, format_traceparent, parse_traceparent
from kafkahooks.tracing._process import batch_contexts, process_span
from kafkahooks.tracing._records import RecordSpans


def decode_errors() -> int:
    """Malformed trace-context header values (any carrier) seen so far in this process (each
    meant: no context)."""
    from kafkahooks.tracing import _context

    return _context.decode_errors.value


__all__ = [
    "MAX_LINKS",
    "BatchContexts",
    "BrokerSpans",
    "Carriers",
    "RecordSpans",
    "batch_contexts",
    "carriers",
    "context_from_headers",
    "decode_errors",
    "format_traceparent",
    "parse_traceparent",
    "process_span",
    "record_baggage",
    "record_context",
]
