"""`ThreadBackend`: a call's sub-calls on local threads, so the REPL and the turn loop run
without Ray (tests, debugging): `call.run_call(spec, context, ThreadBackend(llm))`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

from rlm_ray import corpus
from rlm_ray.errors import LLMError
from rlm_ray.prompting.plain_prompt import plain_call_prompt
from rlm_ray.sandbox.boundary import plain
from rlm_ray.tooling import gate
from rlm_ray.tools import ToolCall
from rlm_ray.types import CallResult, LLMReply


class ThreadBackend:
    """Runs sub-calls on local threads: the REPL and the loop without Ray (tests, debugging).

    `llm(messages, model) -> LLMReply`; child RLMs are answered by `rlm(query, context, model)`
    returning a `CallResult` (by default: a plain model call over query and context).
    """

    def __init__(
        self,
        llm: Callable[[list[dict[str, str]], str], LLMReply],
        *,
        default_model: str = "fake",
        rlm: Callable[[str, Any, str], CallResult] | None = None,
        max_workers: int = 64,
        tools: dict[str, Callable[..., Any]] | None = None,
        allow_effects: bool = False,
        approve: Callable[[ToolCall], Any] | None = None,
    ) -> None:
        self._llm, self._rlm, self._model = llm, rlm, default_model
        self._tools, self._allow_effects, self._approve = tools or {}, allow_effects, approve
        self._pool = ThreadPoolExecutor(max_workers=max_workers)
        self.notes: list[str] = []  # the progress lines a cascade sent (`note`), in order

    def root_llm(
        self, messages: list, stop: tuple[str, ...] = (), overrides: dict | None = None
    ) -> LLMReply:
        """A turn of the call's own model (`call.run_call` in-process); `llm` gets `stop=` only
        when the prompt has stop sequences, and `overrides` as keywords when there are any."""
        kwargs = {**({"stop": list(stop)} if stop else {}), **(overrides or {})}
        return self._llm(messages, self._model, **kwargs)  # type: ignore[call-arg]

    def start_llm(self, prompt: str | list, model: str | None) -> Future:
        return self._pool.submit(self._llm_call, prompt, model or self._model)

    def _llm_call(self, prompt: str | list, model: str) -> LLMReply:
        return self._llm([{"role": "user", "content": corpus.render(prompt)}], model)

    def start_rlm(self, query: str, context: Any, model: str | None) -> Future:
        if self._rlm is None:
            return self.start_llm(plain_call_prompt(query, context), model)
        return self._pool.submit(self._rlm, query, context, model or self._model)

    def start_tool(self, call: ToolCall) -> Future:
        return self._pool.submit(
            gate.run_tool,
            self._tools,
            call,
            allow_effects=self._allow_effects,
            approve=self._approve,
            plain=functools.partial(plain, views=False),
        )

    def cancel(self, handles: list[Future]) -> None:
        for handle in handles:
            handle.cancel()

    def train_proxy(self, records: list, labels: list, vectors: Any = None) -> Any:
        from rlm_ray.cascade import proxy  # scikit-learn: only when a cascade runs

        return proxy.train(_texts(records), labels, vectors)

    def score_proxy(self, trained: Any, records: list, vectors: Any = None) -> Any:
        from rlm_ray.cascade import proxy

        return proxy.score(trained, _texts(records), vectors)

    def embed(self, records: list, model: str) -> tuple[Any, list[tuple[bool, Any]]]:
        """No embedding calls in-process: the cascade falls back to its n-gram proxy."""
        return None, [(False, LLMError("no embeddings in-process (ThreadBackend)", model=model))]

    def note(self, line: str) -> None:
        self.notes.append(line)

    def fetch(self, handles: list[Future]) -> list[tuple[bool, Any]]:
        wait_futures(handles)
        return [_thread_outcome(h) for h in handles]


def _texts(records: list) -> list[str]:
    return [r if isinstance(r, str) else str(r[:2_000]) for r in records]  # the proxy's part


def _thread_outcome(future: Future) -> tuple[bool, Any]:
    if future.cancelled():
        return False, RuntimeError("sub-call cancelled")
    error = future.exception()
    return (False, error) if error is not None else (True, future.result())
