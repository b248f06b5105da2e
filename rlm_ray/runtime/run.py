"""The driver's side of a run, in one place: everything between "the user asked" (`RLM.completion`
or `replay`, a session's question, an `rlm_ray.ops` operator) and "the pool has a root call".

    launcher = Launcher(settings)                 one per RLM (`settings.RunSettings`)
    await launcher.complete(query, context)       a root call: Ray joined or started, the
                                                  runtime's gateways told the run's models, the
                                                  local servers, the root spec, the tools, the
                                                  run (admission, progress, approvals), secrets
                                                  masked in what comes back
    PinnedSession(launcher, context, timeout)     a REPL worker pinned to a session
                                                  (pinned_session.py), its questions `run` here
    await launcher.run_operator(op, records, n)   an operator's batches on the gateways

`RLM`, `Session` and `rlm_ray.ops` are facades over it: they validate, then call these methods.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from rlm_ray.core.call import shared_prefix
from rlm_ray.core.spec import CallSpec
from rlm_ray.errors import LimitExceededError, RLMError, SubCallError
from rlm_ray.front.inputs import is_arrow_table, is_corpus
from rlm_ray.front.settings import RunSettings, context_window
from rlm_ray.local.local_model import DEFAULT_CTX_PER_SLOT, is_local
from rlm_ray.operators import record_ops
from rlm_ray.operators.approximate import Approximate
from rlm_ray.progress import StartUp
from rlm_ray.runtime.driver import (
    Runtime,
    admitted,
    ensure_ray,
    get_runtime,
    run_root,
    runtime_if_up,
)
from rlm_ray.safety.redact import process_secrets, redact_error, redact_tree
from rlm_ray.tooling.gate import replay_settings
from rlm_ray.tooling.pickling import freeze
from rlm_ray.tools import ToolSettings
from rlm_ray.types import CallResult

logger = logging.getLogger(__name__)


class Launcher:
    """Starts an RLM's runs on Ray: one per `RLM`, holding its settings and the context windows
    of its models (asked once, of a gateway)."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self._windows: dict[str, int] = {}  # model -> its context window, once known

    # -- the models' context windows ---------------------------------------------------------
    def windows(self) -> tuple[int, int]:
        """(root model's, sub-model's) context windows in tokens."""
        models = self.settings.models
        return self.window(models.model), self.window(models.sub_model)

    def window(self, model: str) -> int:
        """`model`'s context window: fixed by the config, known, or asked of litellm here (a
        run asks a gateway first, see `prepare`: the driver need not import litellm)."""
        if model not in self._windows:
            self._windows[model] = context_window(self.settings.config, model)
        return self._windows[model]

    # -- the steps of every run --------------------------------------------------------------
    async def connect(self) -> Runtime:
        """Ray joined (or started), and this driver's gateways and pool for these settings."""
        address = self.settings.address
        if threading.current_thread() is threading.main_thread():
            ensure_ray(address)  # once; ray.init wants the main thread (signals)
        else:
            await asyncio.to_thread(ensure_ray, address)
        return await asyncio.to_thread(get_runtime, self.settings.config)

    def connect_blocking(self) -> Runtime:
        """`connect` for blocking code, in the caller's thread."""
        ensure_ray(self.settings.address)
        return get_runtime(self.settings.config)

    async def prepare(self, runtime: Runtime) -> None:
        """Before a run: every gateway is told the run's models, and imports litellm now (while
        the root's first turn runs) if a call of theirs will need it (`LLMGateway.warm_up`); the
        context windows the run needs are asked of a gateway unless known already."""
        m = self.settings.models
        calls = [
            (model, m.api_base, dict(m.llm_kwargs if model == m.model else m.sub_llm_kwargs))
            for model in m.allowed()
            if not is_local(model)
        ]
        if calls:
            for gateway in runtime.gateways:
                gateway.warm_up.remote(calls)
        if self.settings.config.context_window_tokens:
            return
        for model in set(m.allowed()) - set(self._windows):
            if is_local(model):
                self._windows[model] = DEFAULT_CTX_PER_SLOT
            else:
                self._windows[model] = await runtime.gateways[0].context_window.remote(model)

    def prewarm(self, runtime: Runtime, *, root: bool = True) -> None:
        """A run that may go deeper than its root (`max_depth > 1`) has the pool start its
        children's REPL workers as it begins (and a worker for its root if `root` and none is
        idle), so that they start while the root's first turn runs, as the gateways warm up
        in `prepare` (`REPLPool.prewarm`; how many: `idle_workers.children_to_warm`)."""
        if self.settings.config.max_depth > 1:
            runtime.pool.prewarm.remote(self.settings.config, root)

    def prewarm_if_up(self) -> None:
        """`prewarm` now if this RLM's runtime is up already (a deep `RLM` made after a run of
        another `RLM` of this process): its children's workers start before its first run."""
        runtime = runtime_if_up(self.settings.config)
        if runtime is not None:
            self.prewarm(runtime)

    def start_servers(self, stage: Callable[[str], None] | None = None) -> Any:
        """One local model server per node for each local model of the run (None if none);
        `stage` hears "assembling the model", then "loading the model server"."""
        names = {m for m in self.settings.models.allowed() if is_local(m)}
        if not names:
            return None
        from rlm_ray.runtime import model_servers

        config = self.settings.config
        server = model_servers.ServerSettings(
            slots=config.local_server_slots,
            threads=config.local_server_threads,
            ctx_per_slot=DEFAULT_CTX_PER_SLOT,
        )
        return model_servers.start_servers(names, server, stage=stage)

    @staticmethod
    def stop_servers(servers: Any) -> None:
        if servers is not None:
            from rlm_ray.runtime import model_servers

            model_servers.stop_servers(servers)

    def put_context(self, context: Any) -> tuple[Any, Any]:
        """The context in the object store, once: (handle, None) for data, (None, view) for a
        corpus (a table is cut into chunks and put now; a view travels as handles)."""
        import ray

        if is_arrow_table(context):
            from rlm_ray.corpus.store import put_corpus

            config = self.settings.config
            context = put_corpus(context, config.chunk_by, config.chunk_size)
        if is_corpus(context):
            return None, context
        return ray.put(context), None

    def root_spec(self, query: str, context: tuple[Any, Any], servers: Any = None) -> CallSpec:
        """The root call's spec: `context` as `put_context` returned it; the local servers'
        addresses; the run's tools (their functions put into the object store once)."""
        models = self.settings.models
        if servers is not None:
            models = dataclasses.replace(models, local_servers=servers.api_bases)
        context_ref, context_value = context
        return CallSpec.root(
            query,
            models=models,
            config=self.settings.config,
            windows=self.windows(),
            context_ref=context_ref,
            context_value=context_value,
            tools=self._run_tools(),
            model_windows={model: self.window(model) for model in models.allowed()},
        )

    def _run_tools(self) -> ToolSettings | None:
        """This run's tools: the functions go to the object store once (the REPLs get only
        their specs), the calls to the driver's tool hosts."""
        tools = self.settings.tools
        if tools is None:
            return None
        import ray

        from rlm_ray.runtime.tool_host import tool_hosts

        frozen_ref = ray.put(freeze(dict(self.settings.tool_functions)))
        return dataclasses.replace(tools, functions_ref=frozen_ref, hosts=tuple(tool_hosts()))

    @staticmethod
    def warm_prefix(
        servers: Any, spec: CallSpec, stage: Callable[[str], None] | None = None
    ) -> None:
        """A local root model's servers hold the root's fixed prompt start read before it asks
        (`prompt_cache.py`): restored from a saved state in milliseconds, or read now and saved."""
        prefix = shared_prefix(spec) if servers is not None and is_local(spec.model) else None
        if prefix is not None:
            from rlm_ray.runtime import model_servers

            if stage is not None:
                stage("warming the prompt prefix")
            outcomes = model_servers.warm_prefix(servers, spec.model, prefix)
            logger.info("root prompt prefix on the local servers: %s", ", ".join(outcomes))

    async def run(
        self, runtime: Runtime, spec: CallSpec, turn: Any = None, *, approve: bool = True
    ) -> CallResult:
        """The root call on the pool, with admission, progress and (if `approve`) the user's
        tool approvals; no secret of the run in its trace or in the error it raises."""
        settings = self.settings
        secrets = self.secrets()
        try:
            result = await run_root(
                runtime,
                spec,
                settings.on_progress,
                settings.approve if approve else None,
                turn,
            )
        except RLMError as exc:
            redact_error(exc, secrets)
            redact_tree(getattr(exc, "trace", None), secrets)  # a failed run's trace, if any
            raise
        redact_tree(result.trace, secrets)  # the trace leaves here without a secret in it
        return result

    def secrets(self) -> list[str]:
        m = self.settings.models
        return process_secrets(m.api_key, m.llm_kwargs, m.sub_llm_kwargs)

    # -- what the facades call ---------------------------------------------------------------
    async def complete(
        self, query: str, context: Any, *, program: Any = None, allow_effects: bool = False
    ) -> tuple[CallResult, dict[str, float]]:
        """A root call over `context` (checked by `inputs.check_context`), or the replay of a
        `program` (its cells instead of the turn loop; `write` tools only with
        `allow_effects`, never by the RLM's `approve`). Returns the result and its timings."""
        started = time.time()
        startup, servers = StartUp(self.settings.on_progress, started), None
        try:
            async with startup.ticking():  # `on_progress` hears which stage it waits for
                startup.enter("starting Ray")
                runtime = await self.connect()
                self.prewarm(runtime)
                startup.enter("storing the context")
                placed = await asyncio.to_thread(self.put_context, context)
                servers = await asyncio.to_thread(self.start_servers, startup.enter)
                await self.prepare(runtime)
                spec = self.root_spec(query, placed, servers)
                if program is None:
                    await asyncio.to_thread(self.warm_prefix, servers, spec, startup.enter)
                else:
                    spec.program = program
                    spec.tools = replay_settings(spec.tools, allow_effects)
            ready = time.time()
            result = await self.run(runtime, spec, approve=program is None)
            done = time.time()
        finally:
            await asyncio.to_thread(self.stop_servers, servers)
        timings = {"startup_s": ready - started, "run_s": done - ready, "total_s": done - started}
        return result, timings

    async def run_operator(
        self,
        op: record_ops.Operator,
        records: list,
        max_items: int,
        targets: Approximate | None = None,
        count: bool = False,
    ) -> tuple[Any, Any]:
        """An operator over `records` outside any RLM: its batches are sub-calls of a root
        spec that has no context and no turns, through the runtime's gateways (cache, budgets,
        rate limits as in a run); with `targets`, a cascade (`count`: a filter's count).
        Returns the outcome (a `record_ops.Outcome`, or a cascade's `Cascaded`) and the usage."""
        runtime = await self.connect()
        await self.prepare(runtime)  # the sub-model's window, asked of a gateway
        servers = await asyncio.to_thread(self.start_servers) if records else None
        try:
            spec = self.root_spec(f"rlm_ray.ops.{op.kind}", (None, None), servers)
            async with admitted(runtime, spec):
                return await asyncio.to_thread(
                    _operator_batches, spec, runtime, op, records, max_items, targets, count
                )
        except RLMError as exc:
            redact_error(exc, self.secrets())
            raise
        finally:
            await asyncio.to_thread(self.stop_servers, servers)


def _operator_batches(
    spec: CallSpec,
    runtime: Runtime,
    op: record_ops.Operator,
    records: list,
    max_items: int,
    targets: Approximate | None,
    count: bool,
) -> tuple[Any, Any]:
    """The operator's rounds of batches, as sub-calls through `RayBackend` (blocking waits)."""
    import contextlib

    from rlm_ray.core import subcalls
    from rlm_ray.runtime.backend import RayBackend
    from rlm_ray.subcall_kinds import cascades

    backend = RayBackend(spec, None, runtime.gateways, runtime.pool)
    calls = subcalls.SubCalls(
        backend, default_model=spec.models.sub_model, waiting=contextlib.nullcontext
    )
    batching = {"window_tokens": spec.sub_context_window_tokens, "max_items": max_items}
    try:
        if targets is None or not records:
            return cascades.exact_op(op, records, calls, None, **batching), calls.usage
        fn = f"ops.{'count' if count else op.kind}"
        done = cascades.run_cascade(
            op, records, calls, None, targets, fn=fn, count=count, **batching
        )
        calls.usage.proxy_decided += done.report.proxy_decided
        return done, calls.usage
    except SubCallError:
        if calls.limit_hit is not None:
            raise LimitExceededError(calls.limit_hit.limit, calls.limit_hit.value) from None
        raise
    finally:
        calls.drain()
