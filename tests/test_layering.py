"""The house's layering, read from the source: no two modules import each other (not even lazily
inside a function, nor for type checking only), and every arrow points down the layers that
CONTRIBUTING.md draws (wrapped clients → ``_wrapped``/``_instrument`` → ``_wire`` → ``hooks`` →
``export``; plugins know ``hooks``, never a client library or ``_wire``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kafkahooks

SOURCE = Path(kafkahooks.__file__).parent


def _module_name(path: Path, root: Path = SOURCE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path = SOURCE) -> dict[str, set[str]]:
    """Every kafkahooks module and the kafkahooks modules it imports, anywhere in its code."""
    files = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in files else base)
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_a_module_that_imports_it_back() -> None:
    graph = import_graph()
    # Edges from a package's __init__ to its own submodules are re-exports: drop them, then any
    # cycle left is two modules that need each other.
    design = {a: {b for b in targets if not b.startswith(a + ".")} for a, targets in graph.items()}
    assert [] == cycles(design)


_CLIENT_SIDE = (
    "kafkahooks._wire",
    "kafkahooks._instrument",
    "kafkahooks._wrapped",
    "kafkahooks.aiokafka",
    "kafkahooks.kafka",
)
"""What a plugin never imports: the wrapped clients and their adapters."""
_ADAPTERS = ("kafkahooks._wire.aiokafka", "kafkahooks._wire.kafka_python")


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("kafkahooks._wire", _CLIENT_SIDE[1:]),
        ("kafkahooks.hooks", _CLIENT_SIDE),
        ("kafkahooks.export", (*_CLIENT_SIDE, "kafkahooks.hooks")),
        ("kafkahooks.tracing", _CLIENT_SIDE),
        ("kafkahooks.metrics", _CLIENT_SIDE),
        ("kafkahooks.datastreams", _CLIENT_SIDE),
        ("kafkahooks.latency", _CLIENT_SIDE),
        ("kafkahooks.logs", _CLIENT_SIDE),
        ("kafkahooks._wire._shared", _ADAPTERS),
        ("kafkahooks._wire._tap", (*_ADAPTERS, "kafkahooks._wire._shared")),
    ],
)
def test_every_arrow_points_down(layer: str, forbidden: tuple[str, ...]) -> None:
    graph = import_graph()
    upward = {
        (module, target)
        for module, targets in graph.items()
        if module == layer or module.startswith(layer + ".")
        for target in targets
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    }
    assert set() == upward


PUBLIC = {"aiokafka.structs", "aiokafka.errors", "kafka.admin", "kafka.errors", "kafka.structs"}
"""The client libraries' modules an application imports itself (the demo and the bench do)."""


def test_each_library_is_read_in_its_own_folder_only() -> None:
    """aiokafka's and kafka-python's inner modules are imported by their adapter folders alone
    (the wrapped classes import the public client classes; test_internals_list checks that no
    private attribute is read outside the adapters)."""
    third_party = {"aiokafka": "kafkahooks._wire.aiokafka", "kafka": "kafkahooks._wire.kafka_python"}
    outside = []
    for path in SOURCE.rglob("*.py"):
        name = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                top = node.module.split(".")[0]
                inner = node.module != top and node.module not in PUBLIC
                if top in third_party and inner and not name.startswith(third_party[top]):
                    outside.append((name, node.module))
    assert [] == outside


def test_the_checks_see_a_circle(tmp_path: Path) -> None:
    """The scan itself: two modules that import each other, one lazily, are a cycle."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text("def f():\n    from pkg import a\n")
    assert [["pkg.a", "pkg.b"]] == cycles(import_graph(package))
