"""kafkahooks' own counters: what it dropped, failed to decode or caught, so users can see it.

Counters are process-wide, named in snake_case, and cheap to bump from any thread. The metrics
plugin exports them; :func:`snapshot` reads them all.
"""

from __future__ import annotations

from kafkahooks import _fork


class Counter:
    """A thread-safe monotonic count."""

    __slots__ = ("_lock", "_value", "description", "name")

    def __init__(self, name: str, description: str) -> None:
        self.name = name
        self.description = description
        self._value = 0
        self._lock = _fork.Lock()

    def add(self, amount: int = 1) -> None:
        with self._lock:
            self._value += amount

    @property
    def value(self) -> int:
        return self._value


_registry: dict[str, Counter] = {}
_registry_lock = _fork.Lock()


def counter(name: str, description: str) -> Counter:
    """The process-wide counter called ``name`` (created on first use)."""
    with _registry_lock:
        found = _registry.get(name)
        if found is None:
            found = _registry[name] = Counter(name, description)
        return found


def snapshot() -> dict[str, int]:
    """Every counter's current value, by name."""
    with _registry_lock:
        counters = list(_registry.values())
    return {c.name: c.value for c in counters}
