"""The package's layout holds the house rules: small modules, and folders whose door is used.

No module is over 400 lines: the files still over it are named below with the reason, and an
entry that is no longer over fails too, so the list only shrinks.

A folder whose `__init__` re-exports names (`__all__`) is entered through it: code outside the
folder imports those names from the folder, not from the module that defines them. A folder
whose `__init__` is empty on purpose (its modules carry different heavy dependencies) has its
modules imported by name. Read from the source with `ast`, nothing imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rlm_ray"
MAX_LINES = 400

STILL_OVER: dict[str, str] = {}  # every module is under the limit now; keep it so


def _sizes() -> dict[str, int]:
    return {
        p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines())
        for p in PACKAGE.rglob("*.py")
    }


def test_no_module_is_over_400_lines():
    over = {name: n for name, n in _sizes().items() if n > MAX_LINES and name not in STILL_OVER}
    assert not over, f"modules over {MAX_LINES} lines (split them by responsibility): {over}"


def test_every_module_still_allowed_over_400_lines_is_still_over():
    sizes = _sizes()
    done = [name for name in STILL_OVER if sizes.get(name, 0) <= MAX_LINES]
    assert not done, f"no longer over {MAX_LINES} lines (or gone): remove from STILL_OVER: {done}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exported(init: Path) -> set[str]:
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    return set()


def _doors() -> dict[str, set[str]]:
    """Each sub-package of `rlm_ray` and the names its `__init__` re-exports."""
    return {_module_name(p): _exported(p) for p in PACKAGE.glob("*/__init__.py")}


def _bypasses(path: Path, importer: str, doors: dict[str, set[str]]) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
            continue
        folder = node.module.rpartition(".")[0]
        if folder in doors and not (importer + ".").startswith(folder + "."):
            names = [a.name for a in node.names if a.name in doors[folder]]
            if names:
                found.append(f"{importer}: from {node.module} import {', '.join(names)}")
    return found


def test_names_a_folder_re_exports_are_imported_from_the_folder():
    doors = _doors()
    modules = sorted(PACKAGE.rglob("*.py"))
    bypasses = [line for p in modules for line in _bypasses(p, _module_name(p), doors)]
    assert not bypasses, "import these from the folder itself:\n" + "\n".join(bypasses)


def test_the_door_check_sees_a_bypass(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from rlm_ray.trace.file import read_trace, summary\n")
    doors = {"rlm_ray.trace": {"read_trace"}}
    found = _bypasses(probe, "rlm_ray.cli.probe", doors)
    assert len(found) == 1 and found[0].endswith("from rlm_ray.trace.file import read_trace")
