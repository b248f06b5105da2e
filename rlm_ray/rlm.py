"""`RLM`: the facade. Validates everything (`settings.run_settings`), then hands each run to the
driver's `runtime.run.Launcher`, which starts local Ray if none is running.

rlm = RLM("openai/gpt-4o-mini", api_base=None, max_depth=1)
result = rlm.completion("How many reviews are positive?", reviews)
result.answer, result.usage, result.trace
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from rlm_ray.errors import ConfigError
from rlm_ray.front import deep_rlms
from rlm_ray.front.blocking import run_blocking
from rlm_ray.front.inputs import check_context, check_query
from rlm_ray.front.settings import run_settings
from rlm_ray.progress import ProgressCallback
from rlm_ray.tools import ToolCall
from rlm_ray.types import Result

if TYPE_CHECKING:
    from rlm_ray.corpus import Corpus
    from rlm_ray.program import Program
    from rlm_ray.runtime import Launcher
    from rlm_ray.session import Session


class RLM:
    """A Recursive Language Model whose every call runs as Ray work.

    `model` and `sub_model` are litellm model strings (`sub_model` serves `llm_query` and child
    calls; default: `model`), or "local" / "local-small": a small model rlm-ray serves itself on
    every node, offline (`pip install "rlm-ray[local]"`; see rlm_ray/local/local_model.py).
    `models` lists further models the model's code may name in `llm_query(..., model=...)` and
    the other sub-call functions; `model` and `sub_model` always may, any other name is refused.
    `prompt` names a prompt variant (`rlm_ray.prompting.prompts.PROMPTS`; default: by model).
    `api_base`/`api_key` and `llm_kwargs`/`sub_llm_kwargs` (temperature, stop, max_tokens, seed,
    timeout, headers, ...) are passed to litellm.
    `address` names a Ray cluster (default: RAY_ADDRESS, else a local Ray started on demand).
    `cache_dir` turns on the model-call cache in that directory (`call_cache.py`): a re-run of
    the same job makes no model calls. `on_progress(snapshot: Progress)` is called on the
    driver about every 0.25 s during a run, and once more with `finished=True` at its end.
    `tools` are functions marked with `@rlm_ray.tool(effects=...)` that the model may call from
    its REPL; they run on Ray, outside the sandbox (rlm_ray/tools.py). A `write` tool runs
    only if `approve(call)` (called on the driver) returns True, or, without `approve`, if
    `allow_effects=True`; otherwise the call is refused inside the model's code.
    Every other keyword is a limit of `RLMConfig` (max_time_s, cell_timeout_s, ...).
    """

    def __init__(
        self,
        model: str,
        *,
        sub_model: str | None = None,
        api_base: str | None = None,
        api_key: str | None = None,
        max_depth: int = 1,
        max_iterations: int = 20,
        llm_kwargs: Mapping[str, Any] | None = None,
        sub_llm_kwargs: Mapping[str, Any] | None = None,
        address: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        on_progress: ProgressCallback | None = None,
        prompt: str | None = None,
        tools: Iterable[Callable[..., Any]] | None = None,
        allow_effects: bool = False,
        approve: Callable[[ToolCall], Any] | None = None,
        models: Iterable[str] | None = None,
        **limits: Any,
    ) -> None:
        self.settings = run_settings(
            model,
            sub_model=sub_model,
            api_base=api_base,
            api_key=api_key,
            max_depth=max_depth,
            max_iterations=max_iterations,
            llm_kwargs=llm_kwargs,
            sub_llm_kwargs=sub_llm_kwargs,
            address=address,
            cache_dir=cache_dir,
            on_progress=on_progress,
            prompt=prompt,
            tools=tools,
            allow_effects=allow_effects,
            approve=approve,
            models=models,
            **limits,
        )
        self._launcher: Launcher | None = None
        if self.config.max_depth > 1:
            self._announce_deep()

    def _announce_deep(self) -> None:
        """A deep RLM's children's REPL workers start before its first run where they can: by
        any runtime this process starts later (`front.deep_rlms`), or now if its runtime is up."""
        deep_rlms.announce(self)
        # subtle: only if a run of this process imported the runtime (it may be up): `RLM(...)`
        # never imports Ray itself.
        if "rlm_ray.runtime.driver" in sys.modules:
            self.launcher.prewarm_if_up()

    @property
    def config(self) -> Any:
        """The run limits (`RLMConfig`)."""
        return self.settings.config

    @property
    def models(self) -> Any:
        """The models and how they are reached (`ModelSettings`)."""
        return self.settings.models

    @property
    def tools(self) -> Any:
        """The tools the model may call (`tools.ToolSettings`), or None."""
        return self.settings.tools

    @property
    def on_progress(self) -> ProgressCallback | None:
        """Called with a `Progress` snapshot about every 0.25 s during a run (settable)."""
        return self.settings.on_progress

    @on_progress.setter
    def on_progress(self, callback: ProgressCallback | None) -> None:
        if callback is not None and not callable(callback):
            raise ConfigError(f"`on_progress` must be callable, got {callback!r}")
        self.settings = dataclasses.replace(self.settings, on_progress=callback)
        if self._launcher is not None:
            self._launcher.settings = self.settings

    @property
    def launcher(self) -> Launcher:
        """The driver side of this RLM's runs (`runtime.run.Launcher`), made on first use."""
        if self._launcher is None:
            from rlm_ray.runtime import Launcher

            self._launcher = Launcher(self.settings)
        return self._launcher

    def __repr__(self) -> str:
        return (
            f"RLM(model={self.models.model!r}, sub_model={self.models.sub_model!r}, {self.config})"
        )

    def completion(self, query: str, context: Any) -> Result:
        """Answer `query` over `context`. Blocks.

        A str, list or dict is the REPL's `context` as it is. A pyarrow.Table, a path (a
        `pathlib.Path` to a directory, JSONL, CSV, Parquet or text file) or a corpus from
        `rlm_ray.load` is a corpus: chunks in the object store, `context` a `Corpus` view.
        Load a corpus once with `rlm_ray.load` to ask many questions of it without reloading.

        Works inside a running event loop too (a notebook): the run then gets its own thread.
        """
        return run_blocking(lambda: self.acompletion(query, context))

    async def acompletion(self, query: str, context: Any) -> Result:
        """`completion` for async code: awaits the call tree without blocking the event loop."""
        query, context = check_query(query), check_context(context)
        result, timings = await self.launcher.complete(query, context)
        from rlm_ray.program import Program

        made = Program.from_trace(result.trace, self)
        return Result(result.answer, result.usage, result.trace, timings, program=made)

    def session(self, context: Any, *, open_timeout_s: float = 60.0) -> Session:
        """A session over `context` for follow-up questions: `with rlm.session(context) as s:
        s.completion(q1); s.completion(q2)`. The context is put into the object store once and
        one REPL worker is pinned to the session, so its variables persist from question to
        question (rlm_ray/session.py). Opening waits at most `open_timeout_s` for a free REPL
        slot when the pool is full. Close it (`with`, `close()`), or it is closed when garbage
        collected or when the driver exits."""
        from rlm_ray.session import Session

        return Session.open(self.launcher, check_context(context), open_timeout_s)

    def replay(self, program: Program, context: Any, *, allow_effects: bool = False) -> Result:
        """Re-run a recorded `program` (`result.program`, `Program.from_file`) on `context`:
        its cells on a REPL worker as a root call, with this RLM's settings and limits but no
        root-model calls. `allow_effects`: `write` tools run again only if True. Blocks; see
        `Program.run`. Raises `ProgramError` if a cell fails or the answer cannot be taken."""
        return run_blocking(lambda: self.areplay(program, context, allow_effects=allow_effects))

    async def areplay(
        self, program: Program, context: Any, *, allow_effects: bool = False
    ) -> Result:
        """`replay` for async code."""
        from rlm_ray.program import Program
        from rlm_ray.program.replay import replay

        if not isinstance(program, Program):
            raise ConfigError(
                f"`program` must be an rlm_ray.Program (result.program), got {type(program).__name__}"
            )
        return await replay(
            self.launcher, program, context, allow_effects=allow_effects, owner=self
        )


def load(
    source: Any,
    *,
    chunk_by: str = "chars",
    chunk_size: int = 200_000,
    address: str | None = None,
    distributed: bool | None = None,
    **read_options: Any,
) -> Corpus:
    """Load a corpus into the Ray object store once; pass the result to any number of
    `completion()` calls (follow-up questions) without reloading.

    `source`: a pyarrow.Table with a text column, a path (directory, JSONL, CSV, Parquet, text
    file), a glob (`"shards/*.jsonl"`) or a filesystem URI pyarrow opens (`s3://`, `gs://`,
    `hdfs://`, `abfs://`); `read_options` (include, exclude, text_field) say how files are read.
    A large or remote corpus is read and cut on the cluster with Ray Data, a small local one by
    the driver; `distributed` forces one or the other. `chunk_by` ("chars", "tokens" or
    "documents") and `chunk_size` say how it is cut into chunks. Starts local Ray if none is
    running (or connects to `address`). The corpus stays in the object store while the returned
    `Corpus` is alive.
    """
    from rlm_ray.corpus.load import load_corpus

    corpus, _report = load_corpus(
        source,
        chunk_by=chunk_by,
        chunk_size=chunk_size,
        address=address,
        distributed=distributed,
        **read_options,
    )
    return corpus
