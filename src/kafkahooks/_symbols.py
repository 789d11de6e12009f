"""What a client library's code refers to, read from its code objects (for ``check_internals``).

The adapters check, when the first wrapped client of a library is built, that the library still
has the private names they rely on. Reading source text for that (``inspect.getsource``) parses
whole modules: ~130 ms for aiokafka and as much for the OpenTelemetry SDK, on a client's
construction. A code object already lists the names it loads and stores (``co_names``: attributes
and globals) and its constants (keyword-argument names among them): reading those costs well
under a millisecond and is exact about names, where text is not.
"""

from __future__ import annotations

from types import CodeType, FunctionType
from typing import Any


def _walk(code: CodeType, out: set[str]) -> None:
    out.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            _walk(const, out)
        elif isinstance(const, str):
            out.add(const)
        elif isinstance(const, tuple):
            out.update(c for c in const if isinstance(c, str))


def _functions(obj: Any) -> list[FunctionType]:
    if isinstance(obj, type):
        found: list[FunctionType] = []
        for member in vars(obj).values():
            value = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
            if isinstance(value, property):
                found += [f for f in (value.fget, value.fset, value.fdel) if isinstance(f, FunctionType)]
            elif isinstance(value, FunctionType):
                found.append(value)
        return found
    func = getattr(obj, "__func__", obj)
    return [func] if isinstance(func, FunctionType) else []


def symbols(obj: Any) -> frozenset[str]:
    """Every attribute, global and string constant the Python code of ``obj`` (a function, or a
    class's methods and properties) names, nested functions included; empty for compiled code."""
    out: set[str] = set()
    for func in _functions(obj):
        _walk(func.__code__, out)
    return frozenset(out)


def lacks(obj: Any, *names: str) -> list[str]:
    """``obj``'s qualified name with each of ``names`` its code never names (an attribute it no
    longer sets or reads, a call it no longer makes)."""
    found = symbols(obj)
    return [f"{obj.__module__}.{obj.__qualname__}.{name}" for name in names if name not in found]
