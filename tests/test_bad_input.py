"""Every bad input gets a clear error, raised before any work is lost."""

from __future__ import annotations

import socket
import time

import pytest
from helpers import local_completion, run_python

from rlm_ray import RLM, ConfigError, LLMError
from rlm_ray.testing import code, turns


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_depth": -1}, "`max_depth` must be >= 0"),
        ({"max_iterations": 0}, "`max_iterations` must be >= 1"),
        ({"max_iterations": "5"}, "`max_iterations` must be an integer"),
        ({"cell_timeout_s": -1}, "`cell_timeout_s` must be > 0"),
        ({"max_time_s": float("nan")}, "`max_time_s` must be > 0"),
        ({"max_concurrent_calls": 0}, "`max_concurrent_calls` must be >= 1"),
        ({"max_depth": 9}, "needs at least one REPL slot per depth"),
        ({"max_bananas": 3}, "unknown setting(s) ['max_bananas']"),
        ({"api_base": "localhost:8000"}, "`api_base` must be an http(s) URL"),
        ({"llm_kwargs": {"api_key": "x"}}, "must not set ['api_key']"),
    ],
)
def test_invalid_settings(kwargs, message):
    with pytest.raises(ConfigError) as err:
        RLM("openai/gpt-4o-mini", **kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize("model", ["definitely-not-a-model-xyz", "", "nonexistentprovider/model"])
def test_unresolvable_model(model):
    with pytest.raises(ConfigError, match="model"):
        RLM(model)


def test_any_provider_slash_name_is_accepted():
    RLM("openai/some-local-name", api_base="http://127.0.0.1:9/v1")


@pytest.mark.parametrize(
    "context, message",
    [
        ("", "`context` is empty"),
        ("   \n", "`context` is empty"),
        ([], "`context` is empty"),
        ({}, "`context` is empty"),
        (b"\x00\x01binary", "binary"),
        ("text\x00with nul", "NUL bytes"),
        (42, "must be a str, list, dict, pyarrow.Table, path or loaded corpus"),
    ],
)
def test_bad_context(context, message):
    rlm = RLM("openai/gpt-4o-mini")
    with pytest.raises(ConfigError) as err:
        rlm.completion("q", context)
    assert message in str(err.value)


@pytest.mark.parametrize("query", ["", "  ", None, 3])
def test_bad_query(query):
    with pytest.raises(ConfigError, match="`query` must be a non-empty str"):
        RLM("openai/gpt-4o-mini").completion(query, "ctx")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.ray
def test_unreachable_api_base_fails_fast_naming_the_url(ray_session):
    url = f"http://127.0.0.1:{_free_port()}/v1"
    rlm = RLM("openai/scripted", api_base=url, api_key="sk-test", max_retries=2)
    started = time.monotonic()
    with pytest.raises(LLMError) as err:
        rlm.completion("q", "ctx")
    assert url in str(err.value)
    assert (
        time.monotonic() - started < 60
    )  # fails fast: no minutes of retries (a loaded machine starts the pool slowly)


def test_cell_timeout_stops_runaway_code_and_run_goes_on():
    reply = turns(
        code("while True:\n    pass"),
        lambda r: (
            "FINAL(recovered)" if "time limit" in r.last_user else "FINAL(no timeout message)"
        ),
    )
    started = time.monotonic()
    result, _ = local_completion(reply, cell_timeout_s=1.0)
    assert result.answer == "recovered"
    assert result.trace.iterations[0].cells[0].timed_out
    assert time.monotonic() - started < 20


def test_model_writing_broken_code_every_turn_still_ends():
    def reply(r):
        if "used all your iterations" in r.last_user:
            return "gave up"
        return code("def broken(:\n  pass")

    result, _ = local_completion(reply, max_iterations=3)
    assert result.answer == "gave up"
    assert all(it.cells[0].error for it in result.trace.iterations[:3])


@pytest.mark.ray
def test_deadline_stops_the_run(make_rlm, model_server):
    from rlm_ray import LimitExceededError

    model_server.reply = turns(code("import time\n"), code("x = 1"))
    model_server.latency_s = 0.6
    with pytest.raises(LimitExceededError) as err:
        make_rlm(max_time_s=1.0, max_iterations=10).completion("q", "ctx")
    assert err.value.limit == "max_time_s"


@pytest.mark.ray
def test_memory_cap_stops_a_huge_allocation_and_run_goes_on(make_rlm, model_server):
    model_server.reply = turns(
        code("big = 'x' * (4 * 1024 ** 3)"),
        lambda r: "FINAL(recovered)" if "MemoryError" in r.last_user else "FINAL(no memory error)",
    )
    assert make_rlm(repl_memory_mb=512).completion("q", "ctx").answer == "recovered"


def test_ray_restart_in_the_same_process_gets_new_pools(model_server):
    """After `ray.shutdown()` and a new `ray.init()`, the next run must not use dead actors."""
    model_server.reply = turns("FINAL(ok)")
    script = (
        "import ray\n"
        "from rlm_ray import RLM\n"
        f"rlm = RLM('openai/s', api_base='{model_server.url}', api_key='k')\n"
        "print(rlm.completion('q', 'c').answer)\n"
        "ray.shutdown()\n"
        "ray.init(address='local', num_cpus=2, include_dashboard=False)\n"
        "print(rlm.completion('q', 'c').answer)\n"
    )
    out = run_python("-c", script, timeout_s=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["ok", "ok"]


@pytest.mark.ray
def test_api_base_that_never_answers_connects_fails_within_seconds(ray_session):
    """A host that drops connection attempts (full backlog) fails on the connect timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):  # fill the accept backlog: later SYNs go unanswered
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    url = f"http://127.0.0.1:{port}/v1"
    rlm = RLM("openai/scripted", api_base=url, api_key="sk-test", max_retries=1)
    started = time.monotonic()
    try:
        with pytest.raises(LLMError) as err:
            rlm.completion("q", "ctx")
    finally:
        for s in [listener, *fillers]:
            s.close()
    assert url in str(err.value) and "Timeout" in str(err.value)
    assert time.monotonic() - started < 30
