"""Quality benchmark: S-NIAH needles, OOLONG-style aggregation, OOLONG-Pairs, corpus questions;
systems side by side on the same model server.

    python benchmarks/quality.py --model local --split dev --n 2 --out dev.jsonl
    python benchmarks/quality.py --model openai/gpt-4o-mini --split heldout --n 10 \\
        --families oolong pairs --records 200 1000 --inputs str list dir table
    python benchmarks/quality.py --model openai/Qwen2.5-7B --api-base http://127.0.0.1:8000/v1 \\
        --api-key x --systems plain rlm --list          # print the tasks, run nothing

Tasks (benchmarks/quality_tasks.py): generated from a seed; dev and held-out splits use other
seeds and other query phrasings. `--split final` (benchmarks/domains_final.py: one new domain per
composite family, for the final table, run once) has the composite families only: they are its
default, and naming needle, oolong, pairs or corpus with it is a usage error. `--needle-chars`
sizes the needle haystacks (10k..1m), `--records` the record / file counts of the other
families (50..1000); `--n` tasks per family and size; task i reads its input as
``--inputs[i % len]`` (str, list, dir: files in a temp directory, table: a pyarrow table; both
`rlm_ray.load`ed once per task).

Systems (only through `RLM.completion`, so any litellm model works unchanged):
  plain      one model call over query + whole input (`max_depth=0`)
  rlm-code   the REPL, code only (prompt `small-code`; `--code-prompt`)
  rlm        the REPL with sub-calls (`llm_query`, and the record operators where rlm-ray has
             them); prompt: the model's default (`small` for local models, else `paper`;
             `--rlm-prompt`)
  rlm-plans  the REPL with sub-calls, prompt `small-plans`: a plan under a JSON schema first
             (docs/plans.md), or code
  rlm-paper  the REPL with sub-calls, prompt `paper`
  rlm-cascade  `rlm` with `approximate=True`: llm_filter / llm_classify / llm_count over many
             records answer by a cascade (docs/cascades.md); the row's `proxy_decided` says
             how many records its proxy answered without a model call
  rlms       the official `rlms` package (`from rlm import RLM`), when importable; OpenAI-
             compatible servers only; its failures are results
Scores: exact match, 0.75^|error| for numbers, F1 for pairs. Every run gets `--max-time`
seconds (wall time from `RLM(...)` to the answer, a local model server's start included); an
error, a timeout or an answer after the limit scores 0 and is counted as an error. Output: a markdown table (system x
family: mean score, mean time, mean tokens) on stdout, and with `--out` one JSON line per
(task, system): answer, expected, score, time, tokens.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality_tasks as qt  # noqa: E402

SYSTEMS = ("plain", "rlm-code", "rlm", "rlm-plans", "rlm-paper", "rlm-cascade", "rlms")
DEFAULT_SYSTEMS = ("plain", "rlm-code", "rlm")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """How every system is run: one model server, the same limits."""

    model: str = "local"
    sub_model: str | None = None
    api_base: str | None = None
    api_key: str | None = None
    max_time_s: float = 180.0
    max_iterations: int = 8
    slots: int = 1
    code_prompt: str = "small-code"
    rlm_prompt: str | None = None
    request_timeout_s: float = 120.0


@dataclasses.dataclass
class Outcome:
    answer: str
    time_s: float
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    error: str | None = None
    code: list[str] = dataclasses.field(default_factory=list)
    """The root call's code blocks, in order (what the model did, for reading the JSONL)."""
    proxy_decided: int = 0
    """Records a cascade's proxy answered without a model call (`Usage.proxy_decided`)."""


def root_code(trace: Any) -> list[str]:
    """The code blocks the root call ran (none if there is no trace)."""
    if trace is None:
        return []
    return [cell.code for turn in trace.iterations for cell in turn.cells]


# -- sizes and tasks ------------------------------------------------------------------------------
def parse_size(text: str) -> int:
    """ "10k" -> 10_000, "1m" -> 1_000_000, "500" -> 500."""
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def build_tasks(args: argparse.Namespace) -> list[qt.Task]:
    tasks = []
    for family in args.families:
        sizes = args.needle_chars if family == "needle" else args.records
        for size in sizes:
            tasks += qt.make_tasks(family, parse_size(size), args.split, args.n, args.inputs)
    if args.only:
        tasks = [t for t in tasks if any(part in t.id for part in args.only)]
    return tasks


@contextlib.contextmanager
def materialized(task: qt.Task) -> Iterator[Any]:
    """The task's input as the model gets it; a "dir" is written to a temporary directory and
    a "dir" or "table" is `rlm_ray.load`ed (once for all systems), freed afterwards."""
    if task.input_kind == "str":
        yield task.text()
    elif task.input_kind == "dict":
        yield dict(zip(task.names, task.documents))
    elif task.input_kind == "list":
        yield list(task.documents)
    elif task.input_kind == "table":
        import pyarrow as pa

        import rlm_ray

        yield rlm_ray.load(pa.table({"id": list(task.names), "text": list(task.documents)}))
    else:
        import rlm_ray

        with tempfile.TemporaryDirectory(prefix="rlm-quality-") as tmp:
            for name, text in zip(task.names, task.documents):
                path = Path(tmp, name)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            yield rlm_ray.load(Path(tmp))


# -- systems --------------------------------------------------------------------------------------
def rlm_kwargs(system: str, settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "sub_model": settings.sub_model,
        "api_base": settings.api_base,
        "api_key": settings.api_key,
        "max_iterations": settings.max_iterations,
        "max_time_s": settings.max_time_s,
        "local_server_slots": settings.slots,
        "request_timeout_s": settings.request_timeout_s,
    }
    if system == "plain":
        kwargs["max_depth"] = 0
    elif system == "rlm-code":
        kwargs["prompt"] = settings.code_prompt
    elif system in ("rlm", "rlm-cascade"):
        kwargs["prompt"] = settings.rlm_prompt
        kwargs["approximate"] = system == "rlm-cascade"
    elif system == "rlm-plans":
        kwargs["prompt"] = "small-plans"
    elif system == "rlm-paper":
        kwargs["prompt"] = "paper"
    return kwargs


def run_rlm(system: str, task: qt.Task, context: Any, settings: Settings) -> Outcome:
    from rlm_ray import RLM
    from rlm_ray.errors import LimitExceededError, RLMError

    started = time.time()
    try:
        result = RLM(settings.model, **rlm_kwargs(system, settings)).completion(task.query, context)
    except LimitExceededError as exc:
        answer = exc.partial_answer or ""
        code = root_code(getattr(exc, "trace", None))
        return Outcome(answer, time.time() - started, error=f"limit {exc.limit}", code=code)
    except RLMError as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
        code = root_code(getattr(exc, "trace", None))
        return Outcome("", time.time() - started, error=error, code=code)
    usage = result.usage
    return Outcome(
        result.answer,
        time.time() - started,
        usage.input_tokens,
        usage.output_tokens,
        usage.calls,
        code=root_code(result.trace),
        proxy_decided=usage.proxy_decided,
    )


class OfficialRLM:
    """The official `rlms` package on the same server: openai backend, `base_url` = the server
    (for `--model local`, one llama.cpp server of our own for the whole benchmark)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server: Any = None

    def base_url(self) -> tuple[str, str | None]:
        from rlm_ray.local.local_model import LOCAL_MODELS, LocalServer, is_local

        model = self.settings.model
        if is_local(model):
            if self.server is None:
                spec = LOCAL_MODELS[model]
                self.server = LocalServer(spec, slots=self.settings.slots).start()
            return model, self.server.api_base
        if not model.startswith("openai/"):
            raise ValueError("the rlms adapter supports openai/... models (OpenAI-compatible)")
        return model.removeprefix("openai/"), self.settings.api_base

    def backend_kwargs(self, name: str, base: str | None) -> dict[str, Any]:
        """The openai client's settings; `timeout` is `--request-timeout`, per model call."""
        return {
            "model_name": name,
            "base_url": base,
            "api_key": self.settings.api_key or "x",
            "timeout": self.settings.request_timeout_s,
        }

    def run(self, task: qt.Task, context: Any) -> Outcome:
        started = time.time()
        try:
            from rlm import RLM as Official  # the `rlms` distribution
        except ImportError as exc:
            return Outcome("", 0.0, error=f"rlms not importable: {exc}")
        try:
            name, base = self.base_url()
            official = Official(
                backend="openai",
                backend_kwargs=self.backend_kwargs(name, base),
                max_iterations=self.settings.max_iterations,
                # subtle: the package stops itself between turns after this; a run abandoned
                # by `_with_deadline` would otherwise keep calling the server into the next task.
                max_timeout=self.settings.max_time_s,
            )
            if not isinstance(context, (str, list)):  # a dict or a loaded directory: name -> text
                context = dict(zip(task.names, task.documents))
            result = _with_deadline(
                lambda: official.completion(context, root_prompt=task.query),
                self.settings.max_time_s,
            )
        except Exception as exc:  # any failure of the other package is a result
            return Outcome("", time.time() - started, error=f"{type(exc).__name__}: {exc}"[:300])
        tokens = _official_tokens(getattr(result, "usage_summary", None))
        return Outcome(str(result.response), time.time() - started, *tokens)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


def _with_deadline(fn: Any, seconds: float) -> Any:
    """Run `fn` in a daemon thread; TimeoutError after `seconds` (the thread is abandoned: the
    official package has no way to cancel a running completion)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _official_tokens(summary: Any) -> tuple[int, int, int]:
    models = getattr(summary, "model_usage_summaries", None) or {}
    totals = [0, 0, 0]
    for usage in models.values():
        totals[0] += int(getattr(usage, "total_input_tokens", 0) or 0)
        totals[1] += int(getattr(usage, "total_output_tokens", 0) or 0)
        totals[2] += int(getattr(usage, "total_calls", 0) or 0)
    return totals[0], totals[1], totals[2]


# -- running and reporting ------------------------------------------------------------------------
def expected_text(task: qt.Task) -> str:
    if task.metric == "groups":
        return ", ".join(f"{group}: {count}" for group, count in task.expected)
    if task.metric == "f1set":
        return ", ".join(task.expected)
    if isinstance(task.expected, tuple):
        return ", ".join(f"({a}, {b})" for a, b in task.expected)
    return str(task.expected)


def run_benchmark(
    tasks: list[qt.Task], systems: list[str], settings: Settings, out: Any = None
) -> list[dict[str, Any]]:
    """Run every system on every task; one row per (task, system), also written to `out` (a
    text file) as a JSON line as soon as it is known."""
    rows = []
    official = OfficialRLM(settings)
    try:
        for task in tasks:
            with materialized(task) as context:
                for system in systems:
                    if system == "rlms":
                        outcome = official.run(task, context)
                    else:
                        outcome = run_rlm(system, task, context, settings)
                    row = make_row(task, system, outcome, settings.max_time_s)
                    rows.append(row)
                    print(progress_line(row), file=sys.stderr, flush=True)
                    if out is not None:
                        out.write(json.dumps(row) + "\n")
                        out.flush()
    finally:
        official.close()
    return rows


def make_row(task: qt.Task, system: str, outcome: Outcome, max_time_s: float) -> dict[str, Any]:
    """One (task, system) result. An answer that came after `max_time_s` (the run's own limit
    is checked between steps, so one long model call can overrun it) scores 0, as a timeout
    would; `answer_score` keeps what it would have scored."""
    answer_score = qt.score(task, outcome.answer) if outcome.answer else 0.0
    late = outcome.time_s > max_time_s
    error = outcome.error or (
        f"answered after {outcome.time_s:.0f} s > --max-time" if late else None
    )
    return {
        "task": task.id,
        "family": task.family,
        "size": task.size,
        "input": task.input_kind,
        "split": task.split,
        "seed": task.seed,
        "phrasing": task.phrasing,
        "metric": task.metric,
        "system": system,
        "query": task.query,
        "expected": expected_text(task),
        "answer": outcome.answer,
        "score": 0.0 if late else answer_score,
        "answer_score": answer_score,
        "time_s": round(outcome.time_s, 3),
        "input_tokens": outcome.input_tokens,
        "output_tokens": outcome.output_tokens,
        "calls": outcome.calls,
        "proxy_decided": outcome.proxy_decided,
        "error": error,
        "code": outcome.code,
    }


def progress_line(row: dict[str, Any]) -> str:
    answer = " ".join(row["answer"].split())
    answer = answer if len(answer) <= 60 else answer[:28] + " … " + answer[-28:]
    error = f" [{row['error']}]" if row["error"] else ""
    return (
        f"{row['task']} {row['system']}: score {row['score']:.2f} in {row['time_s']:.1f} s, "
        f"answer {answer!r} (expected {row['expected'][:40]!r}){error}"
    )


def table(rows: list[dict[str, Any]]) -> str:
    """One markdown table: per system x family, the number of tasks, mean score, mean time,
    mean tokens (input + output) and the number of errors / timeouts."""
    lines = [
        "| system | family | tasks | mean score | mean time s | mean tokens | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(r["system"], r["family"]) for r in rows}, key=_order)
    for system, family in keys:
        mine = [r for r in rows if r["system"] == system and r["family"] == family]
        n = len(mine)
        score = sum(r["score"] for r in mine) / n
        wall = sum(r["time_s"] for r in mine) / n
        tokens = sum(r["input_tokens"] + r["output_tokens"] for r in mine) / n
        errors = sum(r["error"] is not None for r in mine)
        lines.append(
            f"| {system} | {family} | {n} | {score:.3f} | {wall:.1f} | {tokens:,.0f} | {errors} |"
        )
    return "\n".join(lines)


def _order(key: tuple[str, str]) -> tuple[int, int]:
    system, family = key
    return (
        SYSTEMS.index(system) if system in SYSTEMS else len(SYSTEMS),
        qt.FAMILIES.index(family) if family in qt.FAMILIES else len(qt.FAMILIES),
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="local", help="a litellm model string, or local")
    p.add_argument("--sub-model", default=None)
    p.add_argument("--api-base", default=None)
    p.add_argument("--api-key", default=None)
    p.add_argument("--split", choices=sorted(qt.SPLIT_SEED_BASE), default="dev")
    p.add_argument(
        "--families",
        nargs="+",
        choices=qt.FAMILIES,
        default=None,
        help="default: all (the composite ones with --split final)",
    )
    p.add_argument("--needle-chars", nargs="+", default=["10k", "100k", "1m"])
    p.add_argument("--records", nargs="+", default=["50", "200", "1000"])
    p.add_argument("--inputs", nargs="+", choices=qt.INPUT_KINDS, default=["str", "list", "dir"])
    p.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(DEFAULT_SYSTEMS))
    p.add_argument("--n", type=int, default=2, help="tasks per family and size")
    p.add_argument("--max-time", type=float, default=180.0, help="seconds per task and system")
    p.add_argument("--max-iterations", type=int, default=8)
    p.add_argument("--slots", type=int, default=1, help="server slots of a local model")
    p.add_argument(
        "--request-timeout",
        type=float,
        default=120.0,
        help="seconds one model call may take (raise it on a loaded machine)",
    )
    p.add_argument("--code-prompt", default="small-code", help="prompt of rlm-code")
    p.add_argument("--rlm-prompt", default=None, help="prompt of rlm (default: by model)")
    p.add_argument("--out", default=None, help="JSONL file of every (task, system) run")
    p.add_argument("--list", action="store_true", help="print the tasks and exit")
    p.add_argument(
        "--only", nargs="+", default=None, help="keep the tasks whose id contains one of these"
    )
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = parser()
    args = p.parse_args(argv)
    single_step_ok = args.split in qt.SINGLE_STEP_SPLITS
    if args.families is None:
        args.families = list(qt.FAMILIES if single_step_ok else qt.composite_tasks.FAMILIES)
    wrong = [f for f in args.families if f in qt.SINGLE_STEP and not single_step_ok]
    if wrong:
        p.error(
            f"--split {args.split} has the composite families only "
            f"({' '.join(qt.composite_tasks.FAMILIES)}), not {' '.join(wrong)}"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tasks = build_tasks(args)
    if args.list:
        for task in tasks:
            print(f"{task.id}: {len(task.text()):,} chars, expected {expected_text(task)[:60]!r}")
            print(f"    {task.query.split(qt.LABEL_HELP)[-1].strip()}")
        return 0
    settings = Settings(
        model=args.model,
        sub_model=args.sub_model,
        api_base=args.api_base,
        api_key=args.api_key,
        max_time_s=args.max_time,
        max_iterations=args.max_iterations,
        slots=args.slots,
        code_prompt=args.code_prompt,
        rlm_prompt=args.rlm_prompt,
        request_timeout_s=args.request_timeout,
    )
    with open(args.out, "w") if args.out else contextlib.nullcontext() as out:
        rows = run_benchmark(tasks, args.systems, settings, out)
    print(
        f"model {args.model}, split {args.split}, {len(tasks)} tasks, max time {args.max_time:g} s"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
