"""`LLMGateway`: the async actor that makes every model call of a node, as coroutines.

A call's turns and its `llm_query` sub-calls all come here: the gateway refuses a model the run
was not configured with and a prompt its window cannot take, renders corpus slices in the
prompt into text (the REPL sent handles and offsets), points `model="local"` at its node's
server, asks the admission actor when the run has a budget or a rate limit, reads and writes the
opt-in cache, bumps the run's progress counters and stamps the reply with where it ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import ray
from ray.exceptions import RayTaskError

from rlm_ray import corpus, progress
from rlm_ray.corpus import store
from rlm_ray.errors import LLMError
from rlm_ray.limits.budget import estimate_input_tokens
from rlm_ray.models.llm import LLMRequest
from rlm_ray.runtime.ray_basics import unwrap, whereabouts
from rlm_ray.types import LLMReply


class LLMGateway:
    """Makes model calls for every REPL of the node; each call is a coroutine, not a process."""

    def __init__(self) -> None:
        from rlm_ray.models import llm

        # subtle: litellm is not imported here (2-6 s of CPU, which the root's first turn would
        # wait for): only when a call needs it, or a run whose models need it begins (`warm_up`).
        # What every call needs (the lean path's HTTP client, litellm's model map) loads in a
        # thread now, so that the first fan-out on this gateway does not pay for it.
        threading.Thread(target=llm.preload_lean_path, name="lean-preload", daemon=True).start()
        self._acomplete = llm.acomplete
        self._node_id = ray.get_runtime_context().get_node_id()
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._tasks: dict[str, set[asyncio.Task]] = {}
        self._board = progress.ProgressBoard()  # counters of the runs tracked for progress
        self._caches: dict[str, Any] = {}  # a CallCache per cache directory
        self._where = whereabouts()  # which node, actor and process serve the calls (trace)
        # per model server: the slots it last said it works on (None: it does not say), when
        self._busy: dict[str, tuple[int | None, float]] = {}
        self._asking: set[str] = set()
        self._background: set[asyncio.Future] = set()

    def ready(self) -> bool:
        return True

    def node_id(self) -> str:
        """The node this gateway runs on (for sending it the sub-calls whose chunks are there)."""
        return self._node_id

    async def warm_up(self, calls: list[tuple[str, str | None, dict[str, Any]]]) -> None:
        """A run begins whose calls are (model, api_base, kwargs): if one of them needs litellm,
        it is imported and its first-call costs paid now, offline, while the root's first turn
        runs. (Whether one does is read from litellm's model map: ~0.2 s of CPU, once, in a
        thread, here rather than in the driver.)"""
        from rlm_ray.models import llm

        needed = await asyncio.to_thread(lambda: any(llm.needs_litellm(*c) for c in calls))
        if needed:
            await llm.warm_up()

    async def context_window(self, model: str) -> int:
        """`model`'s context window from litellm's model map (the driver does not load litellm;
        a model the map surely does not hold is answered without it)."""
        from rlm_ray.models import llm

        if llm.window_needs_litellm(model):
            await llm.litellm_loaded()  # imported in a thread: the event loop goes on
        return llm.context_window(model)

    async def complete(
        self,
        request: LLMRequest,
        run_id: str,
        max_in_flight: int,
        depth: int = 0,
        cache_dir: str | None = None,
        admission: Any = None,
        sub_call: bool = False,
    ) -> LLMReply:
        check_request(request)  # before a semaphore, a cache key or a rendered slice
        limit = self._limits.setdefault(run_id, asyncio.Semaphore(max_in_flight))
        tasks = self._tasks.setdefault(run_id, set())
        task = asyncio.current_task()
        tasks.add(task)  # type: ignore[arg-type]
        try:
            async with _held(limit, self._board.get(run_id), depth):
                if admission is None:
                    send = self._sender(request)
                else:  # a budget or a rate limit: asked only on a cache miss
                    send = functools.partial(
                        self._admitted, run_id=run_id, admission=admission, sub_call=sub_call
                    )
                # a corpus slice in the prompt becomes text here; `local`: this node's server
                pulled = await _chunks_pulled(request, self._node_id)
                request = (await _rendered(request)).for_node(self._node_id)
                started = time.time()
                reply = await self._call(request, run_id, depth, cache_dir, send)
                if pulled is not None:  # the prompt read chunks: were they on this node?
                    reply.chunks_local, reply.chunk_bytes_pulled = pulled == 0, pulled
                # when and where this call ran, for the trace
                reply.started_s, reply.ended_s = started, time.time()
                reply.node_id, reply.actor_id, reply.pid = self._where
                return reply
        finally:
            tasks.discard(task)  # type: ignore[arg-type]
            if not tasks:
                del self._tasks[run_id], self._limits[run_id]

    async def embed(
        self,
        request: LLMRequest,
        run_id: str,
        max_in_flight: int,
        cache_dir: str | None = None,
        admission: Any = None,
    ) -> tuple[Any, LLMReply]:
        """An embedding call (`request.embed`: rlm_ray/models/embeddings.py) made as `complete` makes
        a sub-call; returns its vectors and its reply without them, as two objects
        (`num_returns=2`): the caller reads the usage, the proxy's tasks get the vectors."""
        from rlm_ray.models import embeddings

        reply = await self.complete(request, run_id, max_in_flight, 1, cache_dir, admission, True)
        return embeddings.split(reply)

    def _sender(self, request: LLMRequest) -> Callable[[LLMRequest], Awaitable[LLMReply]]:
        if request.embed:
            from rlm_ray.models import embeddings

            return embeddings.aembed
        return self._acomplete

    async def _call(
        self,
        request: LLMRequest,
        run_id: str,
        depth: int,
        cache_dir: str | None,
        send: Callable[[LLMRequest], Awaitable[LLMReply]],
    ) -> LLMReply:
        counters = self._board.get(run_id)
        if counters is None and cache_dir is None:
            return await send(request)
        reply = None
        if counters is not None:
            counters.call_started(depth, request.api_base)
        try:
            if cache_dir is None:
                reply = await send(request)
            else:
                reply = await self._cache(cache_dir).complete(request, send)
            return reply
        finally:
            if counters is not None:
                counters.call_ended(depth, reply, request.api_base)

    def _cache(self, cache_dir: str) -> Any:
        if cache_dir not in self._caches:
            from rlm_ray.models.call_cache import CallCache

            self._caches[cache_dir] = CallCache(cache_dir)
        return self._caches[cache_dir]

    def track_run(self, run_id: str) -> None:
        self._board.track(run_id)
        # a server that did not say may be another one now (restarted, or another at its port)
        self._busy = {url: said for url, said in self._busy.items() if said[0] is not None}

    async def progress(self, run_id: str, forget: bool = False) -> progress.RunCounters | None:
        """The run's counters, with what each server it has calls at last said it works on
        (asked again in the background: the driver polls a few times a second)."""
        counters = self._board.read(run_id, forget)
        if counters is None:
            return None
        servers = [url for url, n in counters.to_server.items() if n > 0]
        for url in servers:
            self._ask_slots(url)
        counters.server_busy = {
            url: busy
            for url in servers
            if (busy := self._busy.get(url, (None, 0.0))[0]) is not None
        }
        return counters

    def _ask_slots(self, url: str) -> None:
        """Ask a model server which slots it works on (llama.cpp's `/slots`), unless asked in
        the last half second (a server that does not say: not again in this run, or a minute)."""
        busy, at = self._busy.get(url, (None, -1e9))
        wait_s = _SLOTS_EVERY_S if busy is not None else _NO_SLOTS_AGAIN_S
        if url in self._asking or time.monotonic() - at < wait_s:
            return
        self._asking.add(url)

        async def ask() -> None:
            from rlm_ray.models import openai_http

            try:
                self._busy[url] = (await openai_http.busy_slots(url), time.monotonic())
            finally:
                self._asking.discard(url)

        task = asyncio.ensure_future(ask())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _admitted(
        self, request: LLMRequest, *, run_id: str, admission: Any, sub_call: bool
    ) -> LLMReply:
        """The call, once the run's budget admits it and its model's rate allows it."""
        estimate = estimate_input_tokens(request.messages)
        try:
            wait_s = await admission.admit_model_call.remote(
                run_id, request.model, sub_call, estimate
            )
        except RayTaskError as exc:
            raise unwrap(exc) from None
        tokens, cost = 0, 0.0
        try:
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            reply = await self._sender(request)(request)
            tokens, cost = reply.input_tokens + reply.output_tokens, reply.cost_usd
            return reply
        finally:  # a failed call gives its reservation back
            admission.settle_model_call.remote(run_id, request.model, estimate, tokens, cost)

    def in_flight(self) -> dict[str, int]:
        """Model calls running now, per run."""
        return {run_id: len(tasks) for run_id, tasks in self._tasks.items() if tasks}

    def cancel_run(self, run_id: str) -> int:
        """Cancel every model call of a run (its root was cancelled or stopped)."""
        tasks = list(self._tasks.get(run_id, ()))
        for task in tasks:
            task.cancel()
        return len(tasks)


_SLOTS_EVERY_S = 0.5
_NO_SLOTS_AGAIN_S = 60.0


@contextlib.asynccontextmanager
async def _held(
    limit: asyncio.Semaphore, counters: progress.RunCounters | None, depth: int
) -> AsyncIterator[None]:
    """`limit` held for a call; while the call waits for it, it counts as held (progress)."""
    if counters is not None:
        counters.held[depth] += 1
    try:
        await limit.acquire()
    finally:
        if counters is not None:
            counters.held[depth] -= 1
    try:
        yield
    finally:
        limit.release()


def check_request(request: LLMRequest) -> None:
    """Refuse a call of a model the run was not configured with (litellm would send that
    provider's key from the environment to the run's `api_base`), and a prompt longer than
    the model's window allows, counted from its slices' offsets before any is read."""
    if request.model not in request.allowed_models:
        raise LLMError(
            f"model call to {request.model!r} refused: not one of this run's models "
            f"({', '.join(map(repr, request.allowed_models)) or 'none'})",
            model=request.model,
            kind="model not allowed",
        )
    limit = request.max_prompt_chars or corpus.MAX_MATERIALISE_CHARS
    size = sum(corpus.prompt_chars(m["content"]) for m in request.messages)
    if size > limit:
        raise LLMError(
            f"model call to {request.model!r} refused: its prompt is {size:,} characters, more "
            f"than its window allows ({limit:,}; `context_window_tokens` sets the window)",
            model=request.model,
            kind="prompt too long",
        )


async def _chunks_pulled(request: LLMRequest, node_id: str) -> int | None:
    """Bytes of the prompt's chunks this node does not hold (reading them moves them here);
    None for a prompt without corpus slices."""
    if all(isinstance(m["content"], str) for m in request.messages):
        return None

    def pulled() -> int | None:  # in a thread: reading a manifest the first time blocks
        refs = [r for m in request.messages for r in store.prompt_objects(m["content"])]
        return store.pulled_bytes(refs, node_id) if refs else None

    return await asyncio.to_thread(pulled)


async def _rendered(request: LLMRequest) -> LLMRequest:
    """Corpus slices in a prompt become text here, where the model call is made: the REPL that
    passed them sent only handles and offsets."""
    if all(isinstance(m["content"], str) for m in request.messages):
        return request
    messages = []
    for message in request.messages:
        content = message["content"]
        if not isinstance(content, str):
            content = await store.render(content)
        messages.append({**message, "content": content})
    return dataclasses.replace(request, messages=messages)


RemoteGateway: Any = ray.remote(LLMGateway)
