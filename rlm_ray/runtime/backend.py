"""`RayBackend`: a call's model turns and sub-calls as Ray work, and the waits for them.

A turn or an `llm_query` is a task on one of the run's gateways (round robin from a random start,
the run's cap on calls in flight split over them); a `recursive_llm` is a child call admitted by
the pool; a cascade's proxy is trained and scores records in Ray tasks (proxy_tasks.py). Waits go
in short slices, so a cell timeout raised into the waiting thread lands.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
from itertools import count
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayTaskError

from rlm_ray import corpus
from rlm_ray.core.call import remaining_s
from rlm_ray.core.spec import CallSpec
from rlm_ray.corpus import store as corpus_store
from rlm_ray.errors import LimitExceededError
from rlm_ray.local.local_model import LOCAL_MODELS
from rlm_ray.models import embeddings
from rlm_ray.models.llm import LLMRequest
from rlm_ray.operators import approximate
from rlm_ray.runtime import embed_tasks, proxy_tasks
from rlm_ray.runtime.ray_basics import unwrap
from rlm_ray.safety import measure
from rlm_ray.safety.redact import process_secrets
from rlm_ray.tools import ToolCall
from rlm_ray.types import LLMReply

# Child contexts larger than this are put in the object store by the REPL that cuts them, so the
# pool and the child read them by handle instead of carrying a copy in each message.
_INLINE_CONTEXT_BYTES = 100 * 1024
_WAIT_SLICE_S = 0.2


LOCAL_IN_FLIGHT_PER_SLOT = 2  # model calls in flight per server slot, per gateway


class RayBackend:
    """Starts a call's sub-calls as Ray work (`repl.Backend`)."""

    _ids = count()

    def __init__(self, spec: CallSpec, context: Any, gateways: list, pool: Any) -> None:
        self.spec, self.context, self.pool = spec, context, pool
        # The run's cap on calls in flight is split evenly over the gateways it uses, so the
        # gateways' semaphores add up to at most the cap (a cap of 1 uses one gateway).
        cap = spec.config.max_concurrent_calls
        self.all_gateways = gateways
        self.gateways = gateways[: max(1, min(len(gateways), cap))]
        self._per_gateway_cap = cap // len(self.gateways)
        if spec.models.local_servers:
            # rlm-ray's own model server answers one request per slot at a time. Handed a
            # whole fan-out, it queues hundreds, the later ones outwait the request timeout
            # and are sent again, and the scan thrashes (300 records at ~1 s each: 147
            # answered, then none for 450 s). Two per slot per gateway keep it busy; the rest
            # wait here, where no timeout runs.
            slots = spec.config.local_server_slots
            self._per_gateway_cap = min(self._per_gateway_cap, LOCAL_IN_FLIGHT_PER_SLOT * slots)
        # Each call starts its round robin at a random gateway: calls that make one model call
        # each would otherwise all queue on the same one.
        self._next = random.randrange(len(self.gateways))
        locality = spec.config.chunk_locality and len(self.gateways) > 1
        self._locality = ChunkLocality(self.gateways, self._per_gateway_cap) if locality else None

    def _gateway(self) -> Any:
        self._next = (self._next + 1) % len(self.gateways)
        return self.gateways[self._next]

    def _request(self, model: str, messages: list, kwargs: dict, window: int) -> LLMRequest:
        """A call of `model`, whose context window is `window` tokens."""
        m, cfg = self.spec.models, self.spec.config
        request = LLMRequest(
            model=self._served_name(model),
            messages=messages,
            api_base=m.api_base,
            api_key=m.api_key,
            kwargs=kwargs,
            timeout_s=cfg.request_timeout_s,
            max_retries=cfg.max_retries,
            allowed_models=tuple(self._served_name(name) for name in m.allowed()),
            max_prompt_chars=corpus.max_prompt_chars(window),
        )
        if model in m.local_servers:  # rlm-ray's own server: the gateway picks its node's
            request.api_base, request.api_key = None, "local"
            request.api_base_by_node = m.local_servers[model]
        return request

    def _served_name(self, model: str) -> str:
        """The model string a request names: rlm-ray's own server's for a local model."""
        if model in self.spec.models.local_servers:
            return f"openai/{LOCAL_MODELS[model].served_name}"
        return model

    def _complete(
        self, request: LLMRequest, depth: int, sub_call: bool = False, gateway: Any = None
    ) -> Any:
        spec = self.spec
        # the dashboard's task list names each model call by role and depth
        role = "llm_query" if sub_call else "model turn"
        name = f"{role} depth={depth} call={spec.call_id}"
        complete = (gateway or self._gateway()).complete.options(name=name)
        return complete.remote(
            request,
            spec.run_id,
            self._per_gateway_cap,
            depth,
            spec.config.cache_dir,
            spec.admission,
            sub_call,
        )

    def root_llm(
        self, messages: list, stop: tuple[str, ...] = (), overrides: dict | None = None
    ) -> LLMReply:
        """A turn of this call's own model (the root model at depth 0, else the sub-model);
        `stop` (the prompt's stop sequences) applies unless the caller's kwargs set their own;
        `overrides` replace kwargs for this turn."""
        kwargs = (
            self.spec.models.llm_kwargs if self.spec.depth == 0 else self.spec.models.sub_llm_kwargs
        )
        if stop and "stop" not in kwargs:
            kwargs = {**kwargs, "stop": list(stop)}
        kwargs = {**kwargs, **(overrides or {})}
        request = self._request(self.spec.model, messages, kwargs, self.spec.context_window_tokens)
        ref = self._complete(request, self.spec.depth)
        try:
            return ray.get(ref, timeout=remaining_s(self.spec))
        except GetTimeoutError:
            ray.cancel(ref)
            raise LimitExceededError("max_time_s", self.spec.config.max_time_s) from None
        except RayTaskError as exc:
            raise unwrap(exc) from None

    def start_llm(self, prompt: str | list, model: str | None) -> Any:
        # a list prompt holds corpus views: handles and offsets, turned into text by the gateway
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        models = self.spec.models
        request = self._request(
            model or models.sub_model, messages, models.sub_llm_kwargs, self.spec.window_of(model)
        )
        locality = self._locality
        near = locality.gateway_for(prompt) if locality else None
        ref = self._complete(request, self.spec.depth + 1, sub_call=True, gateway=near)
        if locality and near is not None:
            locality.sent(near, ref)
        return ref

    def start_rlm(self, query: str, context: Any, model: str | None) -> Any:
        spec = self.spec
        child = spec.child(next(self._ids), query, model)
        if context is self.context and spec.context_ref is not None:
            child.context_ref = spec.context_ref  # the same input: pass the handle on
        elif isinstance(context, corpus.Corpus):
            child.context_value = context  # a view: handles and offsets, never its text
        elif _size(context) > _INLINE_CONTEXT_BYTES:
            child.context_ref = ray.put(context)
        else:
            child.context_value = context
        admit = self.pool.run_call.options(name=f"admit depth={child.depth} call={child.call_id}")
        return admit.remote(child, self.all_gateways)

    def start_tool(self, call: ToolCall) -> Any:
        spec, settings = self.spec, self.spec.tools
        assert settings is not None and settings.hosts, "a tool call in a run without tools"
        call = dataclasses.replace(call, call_id=spec.call_id, depth=spec.depth)
        self._next_host = (getattr(self, "_next_host", -1) + 1) % len(settings.hosts)
        host = settings.hosts[self._next_host]
        run = host.run.options(name=f"tool {call.name} depth={spec.depth} call={spec.call_id}")
        m = spec.models
        return run.remote(
            settings.functions_ref,  # a top-level handle: Ray hands the host the functions
            call,
            spec.run_id,
            settings.allow_effects and not settings.ask,  # with approve(), it alone decides
            spec.admission,
            settings.approvals,
            process_secrets(m.api_key, m.llm_kwargs, m.sub_llm_kwargs),
        )

    def cancel(self, handles: list) -> None:
        for ref in handles:
            ray.cancel(ref)

    def train_proxy(self, records: list, labels: list, vectors: Any = None) -> Any:
        spec = self.spec
        return proxy_tasks.train(records, labels, spec.deadline, spec.config.max_time_s, vectors)

    def score_proxy(self, proxy: Any, records: list, vectors: Any = None) -> Any:
        spec = self.spec
        return proxy_tasks.score(proxy, records, spec.deadline, spec.config.max_time_s, vectors)

    def embed(self, records: list, model: str) -> tuple[Any, list[tuple[bool, Any]]]:
        """`records` embedded by `model`, in batches on the run's gateways (embed_tasks.py)."""
        spec, m = self.spec, self.spec.models
        configured = approximate.embedding_model(spec.config.approximate)
        template = LLMRequest(
            model=model,
            messages=[],
            api_base=m.api_base,
            api_key=m.api_key,
            timeout_s=spec.config.request_timeout_s,
            max_retries=spec.config.max_retries,
            allowed_models=(configured,) if configured else (),  # the run's, and no other
        )

        def start(inputs: list) -> tuple[Any, Any]:
            call = self._gateway().embed.options(num_returns=2, name=f"embed call={spec.call_id}")
            request = embeddings.batch_request(template, inputs)
            cap, cache = self._per_gateway_cap, spec.config.cache_dir
            return call.remote(request, spec.run_id, cap, cache, spec.admission)

        return embed_tasks.embed(records, start, spec.deadline, spec.config.max_time_s)

    def note(self, line: str) -> None:
        """A stage line for the run's progress display, kept by the pool (fire and forget)."""
        self.pool.note_stage.remote(self.spec.run_id, self.spec.call_id, line)

    def fetch(self, handles: list) -> list[tuple[bool, Any]]:
        ready = _wait_all(handles, self.spec.deadline)
        if self._locality:
            self._locality.finished(ready)
        if len(ready) == len(handles):
            try:
                return [(True, value) for value in ray.get(handles)]  # one round trip for all
            except Exception:
                pass  # some failed: sort them out one by one below
        ready_set = set(ready)
        late = [h for h in handles if h not in ready_set]
        # Past the run's deadline: nobody will read these, and a child call may be busy in its
        # host code (describing a huge context) where no clock of its own stops it.
        self.cancel(late)
        return [
            self._outcome(h) if h in ready_set else _deadline_outcome(self.spec) for h in handles
        ]

    @staticmethod
    def _outcome(ref: Any) -> tuple[bool, Any]:
        try:
            return True, ray.get(ref)
        except Exception as exc:
            return False, unwrap(exc)


class ChunkLocality:
    """Sends a sub-call whose prompt reads corpus chunks to a gateway on the node holding most
    of their bytes, while that gateway has fewer than `cap` of this call's sub-calls in flight
    (else round robin, as any other call): the chunks are then read from the node's own object
    store instead of being moved to another node."""

    _nodes: dict[str, str] = {}  # gateway actor id -> its node, per process (asked once)

    def __init__(self, gateways: list, cap: int) -> None:
        self._gateways, self._cap = gateways, cap
        self._in_flight: dict[int, set] = {}
        self._where: dict = {}  # chunk object -> (nodes, size), looked up once per call

    def gateway_for(self, prompt: str | list) -> Any:
        refs = corpus_store.prompt_objects(prompt)
        if not refs:
            return None
        missing = [ref for ref in refs if ref not in self._where]
        if missing:  # subtle: the prompt's own chunks only (a lookup of 25,000 at once made
            found = corpus_store.locations(missing)  # the REPL process run out of memory)
            self._where.update({ref: found.get(ref, ((), 0)) for ref in missing})
        held = corpus_store.bytes_by_node(refs, self._where)
        if not held:
            return None
        nodes = self._gateway_nodes()
        for node in sorted(held, key=held.__getitem__, reverse=True):
            for i, gateway in enumerate(self._gateways):
                if nodes[i] == node and self._has_room(i):
                    return gateway
        return None

    def sent(self, gateway: Any, ref: Any) -> None:
        self._in_flight.setdefault(self._gateways.index(gateway), set()).add(ref)

    def finished(self, refs: list) -> None:
        """These sub-calls are done (the code collected them): their gateways have room again."""
        for in_flight in self._in_flight.values():
            in_flight.difference_update(refs)

    def _has_room(self, i: int) -> bool:
        return len(self._in_flight.get(i, ())) < self._cap

    def _gateway_nodes(self) -> list[str]:
        ids = [g._actor_id.hex() for g in self._gateways]
        unknown = [g for g, a in zip(self._gateways, ids) if a not in self._nodes]
        if unknown:
            for g, node in zip(unknown, ray.get([g.node_id.remote() for g in unknown])):
                self._nodes[g._actor_id.hex()] = node
        return [self._nodes[a] for a in ids]


def _wait_all(refs: list, deadline: float | None) -> list:
    """`ray.wait` for all of `refs` until `deadline`, in short slices.

    subtle: one long `ray.wait` blocks in C++, where the cell clock's asynchronous exception (a
    cell timeout raised into this thread) cannot land; short slices let it in within 0.2 s.
    """
    ready: list = []
    waiting = list(refs)
    while waiting:
        left = None if deadline is None else deadline - time.time()
        if left is not None and left <= 0:
            break
        done, waiting = ray.wait(
            waiting,
            num_returns=len(waiting),
            timeout=_WAIT_SLICE_S if left is None else min(left, _WAIT_SLICE_S),
        )
        ready.extend(done)
    return ready


def _deadline_outcome(spec: CallSpec) -> tuple[bool, Any]:
    return False, LimitExceededError("max_time_s", spec.config.max_time_s)


def _size(value: Any) -> int:
    """About the text size of a child's context, from its first 1,000 items, each measured in
    bounded work (`measure`): the model chose it, and printing it could cost far more than
    shipping it."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, (list, tuple, dict)):
        return 0
    items = value.values() if isinstance(value, dict) else value
    budget, total = measure.Budget(_SIZE_NODES), 0
    for item in itertools.islice(items, _SIZE_ITEMS):
        size = measure.text_length(item, budget)
        if size is None:  # too many parts to count: large enough
            return _INLINE_CONTEXT_BYTES + 1
        total += size
    return total * max(1, len(value) // _SIZE_ITEMS)


_SIZE_ITEMS = 1000
_SIZE_NODES = 100_000
