"""`Program`: a run's code as a reusable program, built from its trace. No Ray here.

    result.program                      Program.from_trace(result.trace, rlm): bound to the RLM
    Program.from_file("run.jsonl")      the same from a trace file (`rlm-ray run --trace`)
    program.run(new_context)            RLM.replay: the root call on Ray in program mode
    program.save("p.py")                a standalone script (script.py)

What is kept: the cells the root call ran, in order, with their code as written. Cells that
raised in the recorded run are left out (`skipped` says which): the model saw their error and
wrote new code; what such a cell assigned before it failed is not replayed. The model's replies
are gone: nothing calls the root model. `llm_query`, `llm_query_batched`, the record operators
and `recursive_llm` stay live calls in the cells (a child RLM runs its own turns with the
sub-model, as in the recorded run). The answer is taken by the `AnswerRule`
(`rlm_ray/core/answer_rule.py`): always a value the code computes, decided here, once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rlm_ray.core.answer_rule import AnswerRule
from rlm_ray.core.answer_source import whole_token
from rlm_ray.core.parsing import text_final
from rlm_ray.errors import ConfigError
from rlm_ray.types import CallTrace

if TYPE_CHECKING:
    from rlm_ray.config import ModelSettings, RLMConfig
    from rlm_ray.front.settings import RunSettings
    from rlm_ray.types import Result


class RLM(Protocol):
    """What a program reads of the `rlm_ray.RLM` it is bound to (no import of it: the RLM
    imports this module)."""

    @property
    def models(self) -> ModelSettings: ...

    @property
    def config(self) -> RLMConfig: ...

    def replay(self, program: Program, context: Any, *, allow_effects: bool = False) -> Result:
        """Run `program` on `context` with this RLM's settings."""
        ...


@dataclass(frozen=True)
class ProgramCell:
    """One cell of a program: code the root call ran, and the recorded turn (0-based) it came
    from (cells of one turn are checked for `answer["ready"]` together, as the loop does)."""

    code: str
    turn: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not self.code.strip():
            raise ConfigError(f"a program cell must be non-empty code (str), got {self.code!r}")
        object.__setattr__(self, "code", self.code.strip("\n"))


@dataclass(frozen=True)
class Program:
    """The root call of a run as a program: its cells, and how its answer is taken.

    `model`, `sub_model`, `max_depth` and `prompt` are the recorded run's (a replay without an
    `RLM` of its own builds one from them). `recorded_answer` is the run's answer, for reference
    only: a replay computes its own. `skipped` describes the cells left out (they raised)."""

    query: str
    cells: tuple[ProgramCell, ...]
    answer: AnswerRule
    model: str
    sub_model: str = ""
    max_depth: int = 1
    prompt: str | None = None
    recorded_answer: str | None = None
    skipped: tuple[str, ...] = ()
    _rlm: Any = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        cells = tuple(c if isinstance(c, ProgramCell) else ProgramCell(c) for c in self.cells)
        object.__setattr__(self, "cells", cells)
        object.__setattr__(self, "sub_model", self.sub_model or self.model)
        object.__setattr__(self, "skipped", tuple(self.skipped))

    def __getstate__(self) -> dict[str, Any]:
        # the bound RLM (its API key included) never travels: not to Ray, not into pickles
        return {k: v for k, v in self.__dict__.items() if k != "_rlm"}

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_trace(cls, trace: CallTrace | Sequence[Mapping[str, Any]], rlm: RLM | None = None):
        """The program of a recorded run: `trace` is `result.trace` (a `CallTrace`) or the
        records of a trace file (root first). With `rlm`, the program is bound to it: `run`
        replays with its settings (models, api_base, key, limits)."""
        recorded = _Recorded.of(trace)
        program = cls(
            query=recorded.query,
            cells=tuple(ProgramCell(code, turn) for turn, code, _ in recorded.kept),
            answer=_answer_rule(recorded),
            model=recorded.model if rlm is None else rlm.models.model,
            sub_model=recorded.sub_model if rlm is None else rlm.models.sub_model,
            max_depth=recorded.max_depth if rlm is None else rlm.config.max_depth,
            prompt=None if rlm is None else rlm.models.prompt,
            recorded_answer=recorded.answer,
            skipped=tuple(recorded.skipped),
        )
        return program if rlm is None else program.bound(rlm)

    @classmethod
    def from_file(cls, path: str | Path) -> Program:
        """The program of a trace file written by `rlm-ray run --trace` (JSONL or Parquet)."""
        from rlm_ray.trace import read_trace

        return cls.from_trace(read_trace(path))

    def bound(self, rlm: RLM | None) -> Program:
        """This program, replayed by default with `rlm`'s settings."""
        copy = dataclasses.replace(self)
        object.__setattr__(copy, "_rlm", rlm)
        return copy

    # -- using ------------------------------------------------------------------------------
    def run(
        self, context: Any, *, rlm: RLM | None = None, allow_effects: bool = False, **settings: Any
    ) -> Result:
        """Re-run the program on `context` on Ray, with no root-model calls; returns a `Result`
        (answer, usage, trace). The RLM: `rlm`, else the one this program was recorded with
        (`result.program`), else the recorded models with `settings` (api_base, api_key,
        limits...). `allow_effects`: `write` tools run again only if True.
        Raises `ProgramError` if a cell fails on this data or the answer cannot be taken."""
        if rlm is not None and settings:
            raise ConfigError("pass either `rlm` or settings to build one, not both")
        rlm = rlm if rlm is not None else (None if settings else self._rlm)
        if rlm is not None:
            return rlm.replay(self, context, allow_effects=allow_effects)
        from rlm_ray.front.blocking import run_blocking
        from rlm_ray.program.replay import replay
        from rlm_ray.runtime import Launcher

        launcher = Launcher(self.settings(**settings))
        return run_blocking(lambda: replay(launcher, self, context, allow_effects=allow_effects))

    def settings(self, **settings: Any) -> RunSettings:
        """Run settings with the recorded models, depth and prompt, and `settings` on top."""
        from rlm_ray.front.settings import run_settings

        settings.setdefault("sub_model", self.sub_model)
        settings.setdefault("max_depth", self.max_depth)
        settings.setdefault("prompt", self.prompt)
        return run_settings(settings.pop("model", self.model), **settings)

    def save(self, path: str | Path) -> Path:
        """Write the program as a readable standalone script (run it with rlm-ray installed:
        ``python p.py --context NEW``); returns the path."""
        from rlm_ray.program.script import render

        api_base = None if self._rlm is None else self._rlm.models.api_base
        out = Path(path)
        out.write_text(render(self, api_base=api_base, script=out.name), encoding="utf-8")
        return out

    def describe(self) -> str:
        """What the program does, in a few lines."""
        lines = [f"a program of {len(self.cells)} cell(s) from a run of {self.query!r}"]
        lines += [f"  left out (raised in the recorded run): {s}" for s in self.skipped]
        lines.append(f"  answer: {self.answer.describe()}")
        return "\n".join(lines)


@dataclass
class _Recorded:
    """What a program needs from a recorded root call, from a `CallTrace` or trace records."""

    query: str
    model: str
    sub_model: str
    max_depth: int
    answer: str | None
    answer_code: str | None  # an answer the model typed, traced to code (answer_source.py)
    finished_by: str
    last_response: str
    kept: list[tuple[int, str, dict[str, Any]]]  # (turn, code, the cell as recorded)
    skipped: list[str]

    @classmethod
    def of(cls, trace: CallTrace | Sequence[Mapping[str, Any]]) -> _Recorded:
        if isinstance(trace, CallTrace):
            root = _as_record(trace)
            calls = [{"depth": call.depth} for call in trace.walk()]
        elif isinstance(trace, list) and trace and isinstance(trace[0], Mapping):
            roots = sum(1 for record in trace if record.get("parent_id") is None)
            if roots > 1:  # `rlm-ray chat --trace`: each question builds on the ones before
                raise ConfigError(
                    f"these trace records hold {roots} runs (a chat session's questions); a "
                    "program is made from the trace of one run (`rlm-ray run --trace`)"
                )
            root, calls = dict(trace[0]), [dict(record) for record in trace]
        else:
            raise ConfigError(
                f"a program is built from a CallTrace or trace records, got {trace!r}"
            )
        kept, skipped = [], []
        for iteration in root.get("iterations") or []:
            for number, cell in enumerate(iteration.get("cells") or [], 1):
                turn = int(iteration.get("index", 0))
                if cell.get("error") is None and str(cell.get("code") or "").strip():
                    kept.append((turn, cell["code"], cell))
                else:
                    error = _last_line(cell.get("error") or "empty")
                    skipped.append(f"turn {turn + 1}, block {number}: {error}")
        iterations = root.get("iterations") or []
        return cls(
            query=str(root.get("query") or ""),
            model=str(root.get("model") or ""),
            sub_model=_sub_model(root),
            max_depth=max(1, 1 + max(int(c.get("depth", 0)) for c in calls)),
            answer=root.get("answer"),
            answer_code=root.get("answer_code") or None,
            finished_by=str(root.get("finished_by") or ""),
            last_response=str(iterations[-1].get("response") or "") if iterations else "",
            kept=kept,
            skipped=skipped,
        )


def _as_record(trace: CallTrace) -> dict[str, Any]:
    """The root call as a trace record, without copying its children."""
    iterations = [
        {
            "index": it.index,
            "response": it.response,
            "cells": [
                {
                    "code": c.code,
                    "output": c.output,
                    "error": c.error,
                    "final": c.final,
                    "subcalls": [{"model": s.model} for s in c.subcalls],
                }
                for c in it.cells
            ],
        }
        for it in trace.iterations
    ]
    fields = ("query", "model", "answer", "answer_code", "finished_by")
    return {"iterations": iterations, **{name: getattr(trace, name) for name in fields}}


def _sub_model(root: Mapping[str, Any]) -> str:
    """The model the root's sub-calls used (the first one recorded), else the root's."""
    for iteration in root.get("iterations") or []:
        for cell in iteration.get("cells") or []:
            for sub in cell.get("subcalls") or []:
                if sub.get("model"):
                    return str(sub["model"])
    return str(root.get("model") or "")


def _answer_rule(recorded: _Recorded) -> AnswerRule:
    """Decide how the program answers, from how the recorded run ended (answer_rule.py)."""
    kept = recorded.kept
    final_cells = [i for i, (_, _, cell) in enumerate(kept) if cell.get("final")]
    if final_cells:
        return AnswerRule("cell", cell=final_cells[-1])
    if recorded.finished_by == "answer":
        return AnswerRule("answer")
    final = text_final(recorded.last_response)
    if final is not None and final.kind == "FINAL_VAR":
        return AnswerRule("FINAL_VAR", name=final.value)
    if final is not None and recorded.finished_by in ("FINAL", "max_iterations"):
        return _value_rule(final.value.strip(), recorded)
    return AnswerRule("none", literal=recorded.answer)


def _value_rule(literal: str, recorded: _Recorded) -> AnswerRule:
    """A typed answer: the value of the code the run traced it to, else "none"."""
    if not recorded.answer_code:
        return AnswerRule("none", literal=literal)
    outputs = [str(cell.get("output") or "") for _, _, cell in recorded.kept]
    shown = [i for i, output in enumerate(outputs) if whole_token(output, literal) is not None]
    try:
        return AnswerRule(
            "value",
            cell=shown[-1] if shown else None,
            expression=recorded.answer_code,
            literal=literal,
        )
    except ValueError:  # not a pure expression: a trace file made by hand
        return AnswerRule("none", literal=literal)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text
