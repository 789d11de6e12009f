"""When a broker refuses record headers: stop adding them, and resend the refused batch without ours.

A broker from 0.11 on whose topic keeps an older message format (``message.format.version`` below
0.11) answers a Produce carrying record headers with UNSUPPORTED_FOR_MESSAGE_FORMAT (43); some
Kafka-compatible brokers answer UNKNOWN_SERVER_ERROR (-1), which dd-trace treats the same way. A
bare client never sends headers it was not given, so it would have succeeded: kafkahooks must not
turn such a broker into lost records. The batch that was refused is rebuilt, with the client's own
record codec, minus exactly the headers kafkahooks appended to its first record (the application's
own headers are never touched), and handed back to the client's retry path; the producer adds no
batch headers from then on (see :class:`HeaderGate` for UNKNOWN_SERVER_ERROR). If the rebuilt
batch is refused again, the error is the application's, exactly as with the bare client.
"""

from __future__ import annotations

from typing import Any

from kafkahooks._log import get_logger
from kafkahooks._selfstats import counter

_logger = get_logger("kafkahooks.wire")
_disabled = counter(
    "batch_headers_disabled", "Producers that stopped adding batch headers because a broker refused them"
)
_resent = counter(
    "batches_resent_without_headers", "Producer batches resent without kafkahooks' headers after a broker refused them"
)

UNSUPPORTED_FOR_MESSAGE_FORMAT = 43
REJECTING_ERRNOS = frozenset({UNSUPPORTED_FOR_MESSAGE_FORMAT, -1})
"""UNSUPPORTED_FOR_MESSAGE_FORMAT and UNKNOWN_SERVER_ERROR."""

INJECTED_ATTR = "_kafkahooks_injected"
"""Set on a client's batch object: the keys of the headers kafkahooks appended to its first record."""


def refuses_headers(exc: BaseException) -> bool:
    """Whether a produce error is one a broker gives for record headers it cannot store."""
    return getattr(exc, "errno", None) in REJECTING_ERRNOS


class HeaderGate:
    """One producer's switch: open until a broker refuses batches kafkahooks added headers to.

    UNSUPPORTED_FOR_MESSAGE_FORMAT names headers as the cause and closes it at once; an
    UNKNOWN_SERVER_ERROR may be anything (a restarting broker answers with it too), so it takes a
    second one. Every refused batch is resent without kafkahooks' headers either way.
    """

    __slots__ = ("ambiguous", "open")

    def __init__(self) -> None:
        self.open = True
        self.ambiguous = 0
        """UNKNOWN_SERVER_ERROR refusals seen so far."""

    def refused(self, exc: BaseException) -> None:
        if getattr(exc, "errno", None) != UNSUPPORTED_FOR_MESSAGE_FORMAT:
            self.ambiguous += 1
            if self.ambiguous < 2:
                return
        self.close(exc)

    def close(self, exc: BaseException) -> None:
        if self.open:
            self.open = False
            _disabled.add()
            _logger.warning(
                "batch_headers_disabled",
                reason="the broker refused record headers",
                error_type=type(exc).__qualname__,
            )


def without_injected(buffer: Any, injected: tuple[str, ...], reader: Any, builder: Any) -> bytes | None:
    """The v2 record batch in ``buffer`` rebuilt by the client's own ``reader``/``builder`` classes
    (``DefaultRecordBatch``/``DefaultRecordBatchBuilder``), with the trailing ``injected`` headers of
    its first record removed; producer id, epoch, sequence, timestamps, compression, keys, values and
    every other header are kept. None if the batch is not the one kafkahooks built."""
    drop = len(injected)
    if not drop:
        return None
    source = reader(bytes(buffer))
    records = list(source)
    if not records:
        return None
    first_headers = list(records[0].headers)
    if tuple(key for key, _ in first_headers[-drop:]) != injected:
        return None
    out = builder(
        source.magic,
        source.compression_type,
        source.is_transactional,
        source.producer_id,
        source.producer_epoch,
        source.base_sequence,
        2**31 - 1,
    )
    for index, record in enumerate(records):
        headers = first_headers[:-drop] if index == 0 else list(record.headers)
        if out.append(index, timestamp=record.timestamp, key=record.key, value=record.value, headers=headers) is None:
            return None
    _resent.add()
    return bytes(out.build())
