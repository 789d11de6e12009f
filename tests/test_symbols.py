"""Reading what a library's code names, from its code objects (the adapters' internals checks)."""

from __future__ import annotations

from typing import Any

from kafkahooks._symbols import lacks, symbols


class Library:
    def __init__(self) -> None:
        self._conns: dict[str, Any] = {}

    def parse(self, records: Any) -> Any:
        def inner() -> Any:
            return records.next_batch()

        return self.PartitionRecords(records, on_drain=inner)

    @property
    def size(self) -> int:
        return len(self._sizes)

    @staticmethod
    def PartitionRecords(*args: Any, **kwargs: Any) -> Any:
        return args, kwargs


def test_symbols_cover_methods_nested_functions_properties_and_keywords() -> None:
    """Attributes set and read, calls in nested functions, properties, keyword-argument names."""
    names = symbols(Library)
    assert {"_conns", "next_batch", "PartitionRecords", "on_drain", "_sizes"} <= names
    assert {"next_batch", "on_drain"} <= symbols(Library.parse)


def test_lacks_names_only_what_the_code_never_mentions() -> None:
    assert [] == lacks(Library, "_conns", "_sizes")
    assert [f"{__name__}.Library._requests"] == lacks(Library, "_conns", "_requests")
    assert [f"{__name__}.Library.parse.has_next"] == lacks(Library.parse, "next_batch", "has_next")
