"""`RLM`: the facade. Validates everything, starts local Ray if none is running, runs the root call.

rlm = RLM("openai/gpt-4o-mini", api_base=None, max_depth=1)
result = rlm.completion("How many reviews are positive?", reviews)
result.answer, result.usage, result.trace
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from rlm_ray import call_cache, llm, model_names, prompts
from rlm_ray.config import ModelSettings, RLMConfig
from rlm_ray.errors import ConfigError, RLMError
from rlm_ray.local_model import (
    DEFAULT_CTX_PER_SLOT,
    LOCAL_MODELS,
    check_xllamacpp,
    find_parts,
    is_local,
)
from rlm_ray.progress import ProgressCallback
from rlm_ray.redact import process_secrets, redact_error, redact_tree
from rlm_ray.tools import ToolCall, ToolSettings, freeze, tool_settings
from rlm_ray.types import Result

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from rlm_ray.corpus.view import Corpus
    from rlm_ray.program import Program
    from rlm_ray.session import Session


class RLM:
    """A Recursive Language Model whose every call runs as Ray work.

    `model` and `sub_model` are litellm model strings (`sub_model` serves `llm_query` and child
    calls; default: `model`), or "local" / "local-small": a small model rlm-ray serves itself on
    every node, offline (`pip install "rlm-ray[local]"`; see rlm_ray/local_model.py).
    `models` lists further models the model's code may name in `llm_query(..., model=...)` and
    the other sub-call functions; `model` and `sub_model` always may, any other name is refused.
    `prompt` names a prompt variant (`rlm_ray.prompts.PROMPTS`; default: by model). `api_base`/`api_key` and `llm_kwargs`/`sub_llm_kwargs`
    (temperature, stop, max_tokens, seed, timeout, headers, ...) are passed to litellm.
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
        self.config = _config(max_depth=max_depth, max_iterations=max_iterations, **limits)
        self.tools, self._tool_functions = tool_settings(tools, allow_effects, approve)
        self.approve = approve
        if cache_dir is not None:
            absolute = call_cache.check_cache_dir(cache_dir)
            self.config = dataclasses.replace(self.config, cache_dir=absolute)
        if on_progress is not None and not callable(on_progress):
            raise ConfigError(f"`on_progress` must be callable, got {on_progress!r}")
        self.on_progress = on_progress
        allowed = _allowed_models(models)
        for name in (model, sub_model, *allowed):
            if name is not None:
                _check_model(name, api_base)
        _check_api_base(api_base)
        prompts.choose(model, prompt)  # an unknown prompt name fails here, not in a worker
        self.models = ModelSettings(
            model=model,
            sub_model=sub_model or model,
            api_base=api_base,
            api_key=api_key,
            llm_kwargs=_local_defaults(model, _kwargs("llm_kwargs", llm_kwargs)),
            sub_llm_kwargs=_local_defaults(
                sub_model or model, _kwargs("sub_llm_kwargs", sub_llm_kwargs)
            ),
            prompt=prompt,
            allowed_models=allowed,
        )
        self.address = address
        # model -> its context window; found when first needed, by a gateway in a run (the
        # driver never imports litellm for a "provider/name" model: see `model_names`)
        self._windows: dict[str, int] = {}

    @property
    def _window(self) -> int:
        return self._window_of(self.models.model)

    @property
    def _sub_window(self) -> int:
        return self._window_of(self.models.sub_model)

    def _window_of(self, model: str) -> int:
        """The context window of `model`: fixed by the config, known, or asked of litellm here."""
        fixed = self.config.context_window_tokens
        if fixed:
            return fixed
        if model not in self._windows:
            self._windows[model] = _context_window(model)
        return self._windows[model]

    async def _prepare_gateways(self, rt: Any) -> None:
        """Before a run: every gateway is told the run's models, and imports litellm now (while
        the root's first turn runs) if a call of theirs will need it (`LLMGateway.warm_up`: a
        model an OpenAI-compatible server serves and litellm's map does not hold never loads
        it); the context windows the run needs are asked of a gateway unless known already
        (the root's first turn needs a gateway up anyway)."""
        m = self.models
        calls = [
            (model, m.api_base, dict(m.llm_kwargs if model == m.model else m.sub_llm_kwargs))
            for model in m.allowed()
            if not is_local(model)
        ]
        if calls:
            for gateway in rt.gateways:
                gateway.warm_up.remote(calls)
        if self.config.context_window_tokens:
            return
        wanted = set(self.models.allowed()) - set(self._windows)
        for model in wanted:
            if is_local(model):
                self._windows[model] = DEFAULT_CTX_PER_SLOT
            else:
                self._windows[model] = await rt.gateways[0].context_window.remote(model)

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
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.acompletion(query, context))
        return _run_in_thread(lambda: asyncio.run(self.acompletion(query, context)))

    def session(self, context: Any, *, open_timeout_s: float = 60.0) -> Session:
        """A session over `context` for follow-up questions: `with rlm.session(context) as s:
        s.completion(q1); s.completion(q2)`. The context is put into the object store once and
        one REPL worker is pinned to the session, so its variables persist from question to
        question (rlm_ray/session.py). Opening waits at most `open_timeout_s` for a free REPL
        slot when the pool is full. Close it (`with`, `close()`), or it is closed when garbage
        collected or when the driver exits."""
        from rlm_ray.session import Session

        return Session(self, check_context(context), open_timeout_s)

    async def acompletion(self, query: str, context: Any) -> Result:
        """`completion` for async code: awaits the call tree without blocking the event loop."""
        return await self._arun(_check_query(query), context)

    def replay(self, program: Program, context: Any, *, allow_effects: bool = False) -> Result:
        """Re-run a recorded `program` (`result.program`, `Program.from_file`) on `context`:
        its cells on a REPL worker as a root call, with this RLM's settings and limits but no
        root-model calls. `allow_effects`: `write` tools run again only if True. Blocks; see
        `Program.run`. Raises `ProgramError` if a cell fails or the answer cannot be taken."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.areplay(program, context, allow_effects=allow_effects))
        return _run_in_thread(
            lambda: asyncio.run(self.areplay(program, context, allow_effects=allow_effects))
        )

    async def areplay(
        self, program: Program, context: Any, *, allow_effects: bool = False
    ) -> Result:
        """`replay` for async code."""
        from rlm_ray.program.replay import check_replay

        program = check_replay(self, program, allow_effects)
        return await self._arun(program.query, context, program, allow_effects)

    async def _arun(
        self,
        query: str,
        context: Any,
        program: Program | None = None,
        allow_effects: bool = False,
    ) -> Result:
        from rlm_ray import runtime  # imports Ray: only when a run starts

        started = time.time()
        context = check_context(context)
        if threading.current_thread() is threading.main_thread():
            runtime.ensure_ray(self.address)  # once; ray.init wants the main thread (signals)
        else:
            await asyncio.to_thread(runtime.ensure_ray, self.address)
        rt = await asyncio.to_thread(runtime.get_runtime, self.config)
        if not isinstance(context, (str, list, dict)) and _is_arrow_table(context):
            context = await asyncio.to_thread(self._put_corpus, context)
        servers = await self._start_local_servers()
        secrets = self._secrets()
        try:
            await self._prepare_gateways(rt)
            models = self.models
            if servers is not None:
                models = dataclasses.replace(models, local_servers=servers.api_bases)
            spec = self._root_spec(query, context, models)
            if servers is not None and program is None:
                await asyncio.to_thread(_warm_root_prefix, servers, spec)
            ready = time.time()
            approve = self.approve
            if program is not None:
                from rlm_ray.program.replay import replay_tools

                spec.program = program
                spec.tools = replay_tools(spec.tools, allow_effects)  # write tools: asked again
                approve = None
            result = await runtime.run_root(rt, spec, self.on_progress, approve)
            done = time.time()
        except RLMError as exc:
            redact_error(exc, secrets)
            redact_tree(exc.trace, secrets)  # a failed run's trace, if any
            raise
        finally:
            if servers is not None:
                from rlm_ray import model_servers

                await asyncio.to_thread(model_servers.stop_servers, servers)
        redact_tree(result.trace, secrets)  # the trace leaves here without a secret in it
        timings = {"startup_s": ready - started, "run_s": done - ready, "total_s": done - started}
        from rlm_ray.program import Program

        made = Program.from_trace(result.trace, self) if program is None else program.bound(self)
        return Result(result.answer, result.usage, result.trace, timings, program=made)

    def _secrets(self) -> list[str]:
        m = self.models
        return process_secrets(m.api_key, m.llm_kwargs, m.sub_llm_kwargs)

    async def _start_local_servers(self) -> Any:
        """One server per node for each local model of this run (None if there is none)."""
        return await asyncio.to_thread(self._local_servers)

    def _local_servers(self) -> Any:
        names = {m for m in self.models.allowed() if is_local(m)}
        if not names:
            return None
        from rlm_ray import model_servers

        settings = model_servers.ServerSettings(
            slots=self.config.local_server_slots,
            threads=self.config.local_server_threads,
            ctx_per_slot=DEFAULT_CTX_PER_SLOT,
        )
        return model_servers.start_servers(names, settings)

    def _put_corpus(self, table: Any) -> Any:
        from rlm_ray.corpus.store import put_corpus

        return put_corpus(table, self.config.chunk_by, self.config.chunk_size)

    def _root_spec(self, query: str, context: Any, models: ModelSettings, context_ref: Any = None):
        import ray

        from rlm_ray.call import CallSpec
        from rlm_ray.runtime import new_run_id

        corpus = _is_corpus(context)
        deadline = None if self.config.max_time_s is None else time.time() + self.config.max_time_s
        run_id = new_run_id()
        if context_ref is None and not corpus:  # (a session passes the handle it put once)
            context_ref = ray.put(context)
        return CallSpec(
            run_id=run_id,
            call_id=run_id,
            depth=0,
            query=query,
            model=models.model,
            models=models,
            config=self.config,
            context_window_tokens=self._window,
            sub_context_window_tokens=self._sub_window,
            deadline=deadline,
            # The driver puts the context into the object store once; every call gets the handle.
            # A corpus is there already: its view travels as handles and offsets.
            context_ref=None if corpus else context_ref,
            context_value=context if corpus else None,
            tools=self._run_tools(),
            model_windows={model: self._window_of(model) for model in models.allowed()},
        )

    def _run_tools(self) -> ToolSettings | None:
        """This run's tools: the functions go to the object store once (the REPLs get only
        their specs), the calls to the driver's tool hosts."""
        if self.tools is None:
            return None
        import ray

        from rlm_ray.runtime.tool_host import tool_hosts

        frozen_ref = ray.put(freeze(self._tool_functions))
        return dataclasses.replace(self.tools, functions_ref=frozen_ref, hosts=tuple(tool_hosts()))


def _warm_root_prefix(servers: Any, spec: Any) -> None:
    """A local root model's servers hold the root's fixed prompt start read before it asks
    (`prompt_cache.py`): restored from a saved state in milliseconds, or read now and saved."""
    from rlm_ray import model_servers
    from rlm_ray.call import shared_prefix

    prefix = shared_prefix(spec) if is_local(spec.model) else None
    if prefix is not None:
        outcomes = model_servers.warm_prefix(servers, spec.model, prefix)
        logger.info("root prompt prefix on the local servers: %s", ", ".join(outcomes))


# Small local models: greedy decoding, and a cap on a runaway reply (~13 tokens/s on 2 cores).
LOCAL_DEFAULTS: dict[str, Any] = {"temperature": 0.0, "max_tokens": 1024}


def _check_model(model: str, api_base: str | None) -> None:
    if not is_local(model):
        if not (isinstance(model, str) and model_names.has_known_provider(model)):
            llm.check_model(model)  # imports litellm (seconds) to ask it
        return
    if api_base is not None:
        raise ConfigError(
            f"model {model!r} is served by rlm-ray itself: do not pass `api_base` "
            f"(got {api_base!r}); for your own server use 'openai/NAME' with `api_base`"
        )
    spec = LOCAL_MODELS[model]
    find_parts(spec)
    check_xllamacpp(spec)


def _allowed_models(models: Iterable[str] | None) -> tuple[str, ...]:
    """`RLM(models=...)`: the further models model code may name, as a tuple."""
    if models is None:
        return ()
    if isinstance(models, str) or not isinstance(models, Iterable):
        raise ConfigError(f"`models` must be a list of model strings, got {models!r}")
    names = tuple(models)
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"`models` must hold model strings, got {name!r} in {names!r}")
    return names


def _local_defaults(model: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**LOCAL_DEFAULTS, **kwargs} if is_local(model) else kwargs


def _context_window(model: str) -> int:
    return DEFAULT_CTX_PER_SLOT if is_local(model) else llm.context_window(model)


def _config(**values: Any) -> RLMConfig:
    unknown = sorted(set(values) - set(RLMConfig.names()))
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown}; known limits: {RLMConfig.names()}")
    return RLMConfig(**values)


def _kwargs(name: str, value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"`{name}` must be a dict of litellm arguments, got {type(value).__name__}"
        )
    reserved = {"model", "messages", "api_base", "api_key"} & set(value)
    if reserved:
        raise ConfigError(f"`{name}` must not set {sorted(reserved)}: use the RLM arguments")
    return dict(value)


def _check_api_base(api_base: str | None) -> None:
    if api_base is None:
        return
    parsed = urlparse(api_base) if isinstance(api_base, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"`api_base` must be an http(s) URL, got {api_base!r}")


def _check_query(query: Any) -> str:
    if not isinstance(query, str) or not query.strip():
        raise ConfigError(f"`query` must be a non-empty str, got {query!r}")
    return query


def load(
    source: Any,
    *,
    chunk_by: str = "chars",
    chunk_size: int = 200_000,
    address: str | None = None,
    **read_options: Any,
) -> Corpus:
    """Load a corpus into the Ray object store once; pass the result to any number of
    `completion()` calls (follow-up questions) without reloading.

    `source`: a pyarrow.Table with a text column, or a path (directory, JSONL, CSV, Parquet,
    text file; `read_options` go to `rlm_ray.ingest.read_corpus`: include, exclude,
    text_field). `chunk_by` ("chars", "tokens" or "documents") and `chunk_size` say how it is
    cut into chunks. Starts local Ray if none is running (or connects to `address`). The corpus
    stays in the object store while the returned `Corpus` is alive.
    """
    from rlm_ray.config import check_chunking

    check_chunking(chunk_by, chunk_size)
    table = source if _is_arrow_table(source) else _read_path(source, read_options)
    from rlm_ray import runtime
    from rlm_ray.corpus.chunks import document_table
    from rlm_ray.corpus.store import put_corpus

    document_table(table)  # a table without text fails before Ray starts
    runtime.ensure_ray(address)
    return put_corpus(table, chunk_by, chunk_size)


def _read_path(source: Any, options: dict[str, Any]) -> Any:
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(
            f"a corpus is loaded from a path or a pyarrow.Table, got {type(source).__name__}"
        )
    from rlm_ray.corpus.ingest import read_corpus

    table, _report = read_corpus(Path(source), **options)
    return table


def check_context(context: Any) -> Any:
    """Accept str, list/tuple, dict, a pyarrow.Table, a path or a loaded corpus; refuse empty
    and binary input clearly. A path is read here (a table's chunks are put after Ray starts)."""
    if isinstance(context, (bytes, bytearray, memoryview)):
        raise ConfigError("`context` is binary (bytes): decode it to str first")
    if isinstance(context, os.PathLike):
        context = _read_path(context, {})
    if _is_arrow_table(context):
        from rlm_ray.corpus.chunks import document_table

        document_table(context)  # checks the text column and emptiness
        return context
    if _is_corpus(context):
        return context
    if isinstance(context, tuple):
        context = list(context)
    if not isinstance(context, (str, list, dict)):
        raise ConfigError(
            "`context` must be a str, list, dict, pyarrow.Table, path or loaded corpus, got "
            f"{type(context).__name__}"
        )
    if len(context) == 0 or (isinstance(context, str) and not context.strip()):
        raise ConfigError(f"`context` is empty ({type(context).__name__} of length 0)")
    if isinstance(context, str) and "\x00" in context[:1_000_000]:
        raise ConfigError("`context` contains NUL bytes: it looks binary, not text")
    return context


# subtle: `import rlm_ray` must not import pyarrow (~0.2 s, more than the rest of the package),
# which rlm_ray.corpus needs. A table or a corpus view cannot exist before its module is imported,
# so the checks look the module up in sys.modules instead of importing it.
def _is_arrow_table(value: Any) -> bool:
    pa = sys.modules.get("pyarrow")
    return pa is not None and isinstance(value, pa.Table)


def _is_corpus(value: Any) -> bool:
    corpus = sys.modules.get("rlm_ray.corpus.view")
    return corpus is not None and isinstance(value, corpus.Corpus)


def _run_in_thread(fn):
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="rlm-ray-completion")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
