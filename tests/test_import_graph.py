"""The package's import graph has no loops: every import counts, the ones inside functions and
under `TYPE_CHECKING` too (a loop hidden in a function is still a loop for the next reader).

Read from the source with `ast`, nothing imported: an edge A -> B for each `import B` /
`from B import name` in module A (`from pkg import sub` where `sub` is a module is an edge to
the submodule). A package's `__init__` is a node like any module; the implicit import of a
parent package when a submodule loads is not an edge (Python's own order, not a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rlm_ray"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return {target for target in found if target in known and target != name}


def import_graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(path, name, known) for name, path in known.items()}


def find_loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return loops


def _ties(loop: list[str], graph: dict[str, set[str]]) -> list[str]:
    members = set(loop)
    return [f"{a} -> {b}" for a in loop for b in sorted(graph[a] & members)]


def test_the_package_has_no_import_loop():
    graph = import_graph()
    loops = find_loops(graph)
    assert not loops, "import loops:\n" + "\n".join(
        "  " + "; ".join(_ties(loop, graph)) for loop in loops
    )


def test_the_check_sees_imports_inside_functions_and_under_type_checking(tmp_path):
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from rlm_ray.rlm import RLM\n"
        "def f():\n    from rlm_ray import session\n    import rlm_ray.cli\n"
        "from . import errors\n"
    )
    module = tmp_path / "probe.py"
    module.write_text(source)
    known = {name: PACKAGE for name in ("rlm_ray.rlm", "rlm_ray.session", "rlm_ray.cli")}
    known["rlm_ray.errors"] = PACKAGE
    found = _imports(module, "rlm_ray.probe", known)
    assert found == {"rlm_ray.rlm", "rlm_ray.session", "rlm_ray.cli", "rlm_ray.errors"}
    assert find_loops({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
