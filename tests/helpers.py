"""Helpers shared by the test modules: waiting for a condition, running the `rlm-ray` command.

Test modules import them as `from helpers import ...` (pytest puts this directory on sys.path).
"""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# The shared multi-node cluster (conftest's `shared_cluster`): nodes found dead within seconds.
FAST_FAILURE_DETECTION = {"health_check_period_ms": 500, "health_check_failure_threshold": 4}
# Test credentials for the local S3 server (tests/test_corpus_cluster.py), in every node's
# environment as a real cluster's nodes have theirs: never in a runtime_env, never in a trace.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "rlmtestkey",
    "AWS_SECRET_ACCESS_KEY": "rlmtestsecret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # never ask the cloud metadata address
}


def wait_for(
    condition: Callable[[], T],
    timeout_s: float = 60.0,
    what: str | Callable[[], str] = "condition",
    interval_s: float = 0.1,
) -> T:
    """Poll `condition` until it returns something truthy, and return that; fail after
    `timeout_s` naming `what` (a callable is called then, to describe what was last seen)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout_s} s waiting for {described}")
        time.sleep(interval_s)


def cli_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child process, without RAY_ADDRESS (a child attaches
    only where its arguments say) and with litellm's bundled cost map (offline)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    return {**env, **extra}


def run_python(
    *args: str,
    stdin: str | None = None,
    timeout_s: float = 180.0,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """`python ARGS...` in a child process (`cli_env()` unless `env` is given), text captured."""
    return subprocess.run(
        [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=cli_env() if env is None else env,
    )


def run_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess:
    """`rlm-ray ARGS...` (as `python -m rlm_ray`) in a child process; see `run_python`."""
    return run_python("-m", "rlm_ray", *args, **kwargs)


def start_cli(*args: str) -> subprocess.Popen:
    """`rlm-ray ARGS...` started in the background, stdout and stderr piped as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "rlm_ray", *args],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def local_completion(
    reply: Any,
    query: str = "q",
    context: Any = "ctx",
    *,
    model: str = "openai/scripted",
    program: Any = None,
    **kw: Any,
) -> tuple[Any, Any]:
    """`RLM(model, **kw).completion(query, context)` made in this process: the same settings and
    context checks, call spec, REPL and turn loop (`call.run_call`), child RLMs run here too, and
    `FakeLLM(reply)` as the model; no Ray, no HTTP. With `program`, the call replays it (program
    mode) instead of asking the root model. Returns ``(CallResult, fake)``; raises the
    call's `RLMError` as `completion` does. For what a call does with its model and REPL; where
    the work runs, the gateways and litellm are tested over Ray and HTTP."""
    import pickle

    from rlm_ray import RLM
    from rlm_ray.core.call import run_call
    from rlm_ray.core.spec import CallSpec
    from rlm_ray.front.inputs import check_context
    from rlm_ray.front.settings import context_window
    from rlm_ray.testing import FakeLLM
    from rlm_ray.testing.thread_backend import ThreadBackend

    kw.setdefault("api_key", "sk-test")
    rlm = RLM(model, **kw)
    # the context as a worker gets it from the object store: a copy
    context = pickle.loads(pickle.dumps(check_context(context)))
    fake = FakeLLM(reply)
    settings = rlm.settings
    windows = tuple(context_window(rlm.config, m) for m in (model, rlm.models.sub_model))
    root = CallSpec.root(
        query, models=rlm.models, config=rlm.config, windows=windows, tools=rlm.tools
    )
    root.program = program

    def backend(spec: CallSpec) -> ThreadBackend:
        ids = iter(range(1, 1_000_000))

        def child(query: str, context: Any, model: str) -> Any:
            sub = spec.child(next(ids), query, model)
            # a child gets its own copy of the context, as it would from the object store
            return run_call(sub, pickle.loads(pickle.dumps(context)), backend(sub))

        tools = rlm.tools
        return ThreadBackend(
            fake,
            default_model=spec.models.sub_model,
            rlm=child,
            tools=dict(settings.tool_functions),  # run here, through the same gate as on Ray
            allow_effects=tools is not None and tools.allow_effects and not tools.ask,
            approve=settings.approve if tools is not None and tools.ask else None,
        )

    result = run_call(root, context, backend(root))
    if result.error is not None:
        raise result.error
    return result, fake


def trace_sums(trace: Any) -> tuple[int, int, int]:
    """(model calls, input tokens, output tokens) added up over a `CallTrace` tree: every turn
    of every RLM call and every leaf sub-call that answered."""
    calls = input_tokens = output_tokens = 0
    for call in trace.walk():
        for iteration in call.iterations:
            calls += not iteration.replayed  # a replay's recorded turn asked no model
            input_tokens += iteration.input_tokens
            output_tokens += iteration.output_tokens
            for cell in iteration.cells:
                for sub in cell.subcalls:
                    if sub.child is None and sub.kind == "llm" and sub.error is None:
                        calls += 1
                        input_tokens += sub.input_tokens
                        output_tokens += sub.output_tokens
    return calls, input_tokens, output_tokens


def summary_numbers(line: str) -> tuple[int, int, int]:
    """(model calls, tokens in, tokens out) of the progress summary line the CLI prints."""
    import re

    found = re.search(r"([\d,]+) model calls.*?; ([\d,]+) tokens in, ([\d,]+) out", line)
    assert found, line
    calls, tokens_in, tokens_out = (int(g.replace(",", "")) for g in found.groups())
    return calls, tokens_in, tokens_out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def forget_runtimes() -> None:
    """Drop the driver's cached runtimes (gateways, pool). Call it before `ray.shutdown()` in a
    process that will start Ray again: their actor handles must be released while the Ray they
    belong to is still up (released after, they crash the next Ray's core worker)."""
    from rlm_ray.runtime import driver

    with driver._RUNTIMES_LOCK:
        driver._RUNTIMES.clear()
    gc.collect()
