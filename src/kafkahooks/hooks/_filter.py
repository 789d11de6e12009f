"""Request-key filters: which requests' write, read and end-to-end hooks a hook object sees."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kafkahooks.hooks._types import ApiKey


@dataclass(frozen=True, slots=True)
class KeyFilter:
    """Which request keys a hook's ``on_broker_write`` / ``on_broker_read`` / ``on_broker_e2e`` see.

    A hook object asks for a filter by carrying it as its ``request_keys`` attribute (a class
    attribute is fine). The dispatcher applies the filter once, when it sorts the hooks, into
    per-key tuples: a filtered-out key costs nothing per request. Hooks without ``request_keys``
    see every key, internal traffic (ApiVersions, Metadata, heartbeats, SASL) included.

    ``None`` means every key. ``on_broker_e2e`` is delivered when either side allows the key.
    """

    writes: frozenset[int] | None = None
    """Keys whose writes the hook sees, or ``None`` for all."""
    reads: frozenset[int] | None = None
    """Keys whose reads the hook sees, or ``None`` for all."""

    @classmethod
    def of(cls, writes: Iterable[int] | None = None, reads: Iterable[int] | None = None) -> KeyFilter:
        """Build a filter from any iterables of keys (``ApiKey`` members or ints)."""
        return cls(
            None if writes is None else frozenset(int(k) for k in writes),
            None if reads is None else frozenset(int(k) for k in reads),
        )

    def allows_write(self, key: int) -> bool:
        """Whether writes of ``key`` pass."""
        return self.writes is None or key in self.writes

    def allows_read(self, key: int) -> bool:
        """Whether reads of ``key`` pass."""
        return self.reads is None or key in self.reads

    def allows_e2e(self, key: int) -> bool:
        """Whether the end-to-end event of ``key`` passes."""
        return self.allows_write(key) or self.allows_read(key)


ALL_KEYS = KeyFilter()
"""Every key: the default for user hooks."""

TRACING_KEYS = KeyFilter.of(writes=(ApiKey.PRODUCE,), reads=(ApiKey.FETCH, ApiKey.PRODUCE))
"""What the tracing plugins see: Produce writes, and Fetch and Produce (acknowledgement) reads."""
