"""Every private name of a client library or of the OpenTelemetry SDK that kafkahooks touches is
named by the check that runs when the first wrapped client is built (``check_internals``)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from types import ModuleType

import pytest

import kafkahooks
from kafkahooks import _otel
from kafkahooks._wire import aiokafka as _aiokafka
from kafkahooks._wire import kafka_python as _kafka_python

SOURCE = Path(kafkahooks.__file__).parent
STANDARD_LIBRARY = {"_getframe"}
"""Private names of Python itself the adapters use (``sys._getframe``): not a library's to move."""


def own_names() -> set[str]:
    """Names kafkahooks defines anywhere: its functions, classes, module globals and the
    attributes it sets on its own objects (``self.x = ...``). An access to one of these is
    kafkahooks reading itself, not a library."""
    names: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    names.add(node.attr)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return names


def private_names_touched(module: ModuleType) -> dict[str, str]:
    """Private attribute names ``module`` (every file of it, for a package) reads or writes
    (``x._name``, ``getattr(x, "_name")``), with the first file and line that does."""
    found: dict[str, str] = {}
    path = Path(str(module.__file__))
    files = sorted(path.parent.glob("*.py")) if path.name == "__init__.py" else [path]
    for file in files:
        for name, line in _private_names(file).items():
            found.setdefault(name, f"{file.name}:{line}")
    return found


def _private_names(file: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(file.read_text())):
        name = None
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            name = node.args[1].value
        if name and name.startswith("_") and not name.startswith(("__", "_kh")):
            found.setdefault(name, node.lineno)
    return found


@pytest.mark.parametrize("module", [_aiokafka, _kafka_python, _otel], ids=lambda m: m.__name__)
def test_every_private_name_touched_is_checked(module: ModuleType) -> None:
    checked = inspect.getsource(module.check_internals)
    own = own_names()
    unchecked = {
        name: line
        for name, line in private_names_touched(module).items()
        if name not in own and name not in STANDARD_LIBRARY and f'"{name}"' not in checked and f".{name}" not in checked
    }
    assert {} == unchecked, f"{module.__name__} touches these without check_internals naming them (name: file:line)"


def test_the_scan_sees_a_private_name(tmp_path: Path) -> None:
    """The scan itself: a module touching a library's private name is caught."""
    module = ModuleType("fake")
    module.__file__ = str(tmp_path / "fake.py")
    Path(module.__file__).write_text("def hook(client):\n    return client._secret_table, getattr(client, '_other')\n")
    assert {"_secret_table": "fake.py:2", "_other": "fake.py:2"} == private_names_touched(module)
