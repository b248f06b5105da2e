"""What one cell produces (`CellOutcome`), and FINAL(), which model code cannot catch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class FinalAnswer(BaseException):
    """Raised by FINAL()/FINAL_VAR(); a BaseException so ``except Exception`` cannot catch it."""

    def __init__(self, value: Any, kind: str = "FINAL") -> None:
        super().__init__(value, kind)
        self.value = value
        self.kind = kind


class _NoFinal:
    def __repr__(self) -> str:
        return "NO_FINAL"

    def __reduce__(self) -> str:
        return "NO_FINAL"  # unpickles as the module's singleton, so `is NO_FINAL` survives Ray


NO_FINAL: Any = _NoFinal()


@dataclass
class CellOutcome:
    """What running one cell produced."""

    stdout: str
    """Everything printed, plus the repr of a trailing bare expression (caller truncates)."""
    error: str | None
    """None on success, else text for the model (traceback into the cell, timeout, memory)."""
    final: Any
    """The value given to FINAL()/FINAL_VAR() in this cell, else `NO_FINAL`."""
    final_kind: str
    """``"FINAL"``, ``"FINAL_VAR"`` or ``""``."""
    timed_out: bool
    duration_s: float
