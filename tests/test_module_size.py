"""No module of the package is over 400 lines (the house rule: small modules, one concern each).

The files still over it are named below with the reason; an entry that is no longer over fails
too, so the list only shrinks.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rlm_ray"
MAX_LINES = 400

STILL_OVER = {
    "core/call.py": "issue 26: being reworked on another branch (plans); split after it lands",
    "operators/record_ops.py": "issue 26: being reworked on another branch (plans)",
    "prompting/prompts.py": "issue 26: being reworked on another branch (plans)",
    "runtime/pool.py": "issue 26 item 6: being reworked on another branch (prewarm)",
}


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def _sizes() -> dict[str, int]:
    return {p.relative_to(PACKAGE).as_posix(): _lines(p) for p in PACKAGE.rglob("*.py")}


def test_no_module_is_over_400_lines():
    over = {name: n for name, n in _sizes().items() if n > MAX_LINES and name not in STILL_OVER}
    assert not over, f"modules over {MAX_LINES} lines (split them by responsibility): {over}"


def test_every_module_still_allowed_over_400_lines_is_still_over():
    sizes = _sizes()
    done = [name for name in STILL_OVER if sizes.get(name, 0) <= MAX_LINES]
    assert not done, f"no longer over {MAX_LINES} lines (or gone): remove from STILL_OVER: {done}"
