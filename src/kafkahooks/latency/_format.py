"""The flight recorder's dump format: what a recorder writes and the analysis reads."""

from __future__ import annotations

SCHEMA = "kafkahooks.flight_recorder"
VERSION = 1
FIELDS = (
    "end_ns",
    "client_id",
    "role",
    "key",
    "broker",
    "host",
    "port",
    "write_wait_ns",
    "time_to_write_ns",
    "read_wait_ns",
    "time_to_read_ns",
    "bytes_written",
    "bytes_read",
    "partitions",
    "records",
    "error",
)
"""One request, as a dump writes it:

- ``end_ns``: wall-clock time (Unix ns) the request's life ended (its response read, or its write
  done when no response was expected or the write failed).
- ``client_id``, ``role`` (``producer``/``consumer``): the client the recorder served.
- ``key``: the request's name (``Produce``, ``Fetch``, ``Metadata``...); ``broker``: the node id
  (negative for a seed connection), ``host``, ``port``: the address the client dialled.
- ``write_wait_ns``: from the request's creation until its write began (queued in the client);
  ``time_to_write_ns``: writing it; ``read_wait_ns``: from the write's end until its response
  began to be read (behind earlier responses on the connection, or the broker's own time);
  ``time_to_read_ns``: reading the response. kgo's semantics (``reference/kgo-hooks.md``).
- ``bytes_written``, ``bytes_read``: the frames' sizes.
- ``partitions``, ``records``: partition batches the request carried (Produce) or its response
  answered with records (Fetch), and their records; 0 for other keys.
- ``error``: the error's type name, or null.
"""
