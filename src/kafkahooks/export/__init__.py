"""One bounded export path: what leaves the I/O path is handed to a buffer and processed later.

The hot path only calls :meth:`BoundedBuffer.offer` (a length check and a ``deque.append``): when
the buffer is full the item is dropped and counted, never blocking the client. One daemon
:class:`ExportWorker` per process drains every registered :class:`Sink` on a timer, or sooner
when a buffer passes half its capacity, and at shutdown within a timeout. The worker never calls
back into a Kafka client; sinks hand finished telemetry to the OpenTelemetry SDK (whose own
processors batch and export it) or to kafkahooks' exporters. After ``fork()`` the child gets
empty buffers and starts its own worker on first use.
"""

from kafkahooks.export._buffer import BoundedBuffer, buffers
from kafkahooks.export._worker import ExportWorker, Sink, flush, worker

__all__ = ["BoundedBuffer", "ExportWorker", "Sink", "buffers", "flush", "worker"]
