"""The public API is what each public module's ``__all__`` says: sorted, complete, nothing private."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

import kafkahooks


def public_modules() -> list[str]:
    """Every module of the package whose dotted name has no part starting with an underscore."""
    names = ["kafkahooks"]
    for info in pkgutil.walk_packages(kafkahooks.__path__, "kafkahooks."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def isort_key(name: str) -> tuple[int, str]:
    """Constants, then classes, then the rest, each alphabetical (ruff's RUF022 order)."""
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return kind, name


def test_the_public_modules_are_the_ones_we_mean() -> None:
    assert {
        "kafkahooks",
        "kafkahooks.aiokafka",
        "kafkahooks.bench",
        "kafkahooks.broker",
        "kafkahooks.cli",
        "kafkahooks.datastreams",
        "kafkahooks.export",
        "kafkahooks.hooks",
        "kafkahooks.kafka",
        "kafkahooks.latency",
        "kafkahooks.logs",
        "kafkahooks.metrics",
        "kafkahooks.testing",
        "kafkahooks.tracing",
    } == set(public_modules())


@pytest.mark.parametrize("name", public_modules())
def test_all_is_honest(name: str) -> None:
    """``__all__`` exists, is sorted, names only public objects that exist, and lists every public
    object the module (or its private submodules) defines."""
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert sorted(exported, key=isort_key) == list(exported)
    assert len(set(exported)) == len(exported)
    assert [n for n in exported if n.startswith("_") and n != "__version__"] == []
    assert [n for n in exported if not hasattr(module, n)] == []
    defined_here = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and not isinstance(value, types.ModuleType)
        and (getattr(value, "__module__", None) or "").split("._")[0] == name
        and (getattr(value, "__module__", None) or "").startswith(name)
    }
    assert sorted(defined_here - set(exported)) == []


def test_the_hooks_module_covers_every_hook_event() -> None:
    """kafkahooks.hooks, the one public surface of the hook types, carries every protocol of the
    event table and the Hook union of them."""
    import typing

    from kafkahooks import hooks

    assert {e.protocol for e in hooks.EVENTS} == set(typing.get_args(hooks.Hook))
    assert {e.protocol.__name__ for e in hooks.EVENTS} <= set(hooks.__all__)
