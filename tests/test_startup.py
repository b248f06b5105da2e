"""Start-up: nothing imported or started before it is needed, and what a run needs first is
started ahead (child REPL workers, gateways warmed while the root's first turn runs).

Timing is benchmarked (benchmarks/cold_start.py), never asserted here: these tests check what
is imported, what exists, and that nothing is left behind.
"""

from __future__ import annotations

import signal
import threading

import pytest
import ray
from helpers import run_python, start_cli, wait_for

from rlm_ray.models.model_names import PROVIDERS, has_known_provider, surely_unmapped
from rlm_ray.testing import Reply, by_marker, code, turns

HEAVY = ("litellm", "ray", "pyarrow")


def _imported_after(snippet: str) -> set[str]:
    """Which of `HEAVY` a fresh interpreter holds after running `snippet`."""
    probe = f"{snippet}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = run_python("-c", probe, timeout_s=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_importing_the_cli_loads_neither_litellm_nor_ray():
    assert _imported_after("import rlm_ray.cli") == set()


def test_building_an_rlm_for_a_provider_model_does_not_import_litellm():
    snippet = (
        "from rlm_ray import RLM\n"
        "RLM('openai/some-model', api_base='http://127.0.0.1:9/v1', sub_model='anthropic/x')"
    )
    assert _imported_after(snippet) == set()


def test_a_bare_model_name_is_still_checked_by_litellm():
    assert "litellm" in _imported_after("from rlm_ray import RLM\nRLM('gpt-4o-mini')")


@pytest.mark.parametrize(
    "model, known",
    [
        ("openai/gpt-4o-mini", True),
        ("hosted_vllm/Qwen/Qwen2.5-7B", True),
        ("anthropic/claude-sonnet-4-5", True),
        ("openai/", False),
        ("openai/  ", False),
        ("openai", False),
        ("gpt-4o-mini", False),
        ("no-such-provider/x", False),
        ("/x", False),
    ],
)
def test_known_provider_prefixes(model, known):
    assert has_known_provider(model) is known


def test_every_known_provider_is_one_litellm_resolves():
    from rlm_ray.models import llm

    litellm = llm._litellm()
    for provider in sorted(PROVIDERS):
        _, resolved, _, _ = litellm.get_llm_provider(f"{provider}/some-model")
        assert resolved == provider, provider


@pytest.mark.parametrize(
    "model, unmapped",
    [
        ("openai/scripted", True),
        ("hosted_vllm/Qwen/Qwen2.5-7B", True),
        ("openai/gpt-4o-mini-2099", True),
        ("openai/gpt-4o-mini", False),
        ("openai/GPT-4o-mini", False),
        ("gpt-4o-mini", False),
        ("openai/o1", False),
        ("openai/ft:gpt-4o-mini-2024-07-18:my-org::abc123", False),
    ],
)
def test_surely_unmapped_agrees_with_litellm(model, unmapped):
    """A model said to be unmapped has no price and no window in litellm (so a gateway may skip
    litellm for it); every model litellm prices is said to be mapped."""
    from rlm_ray.models import llm

    litellm = llm._litellm()
    assert surely_unmapped(model) is unmapped
    try:
        litellm.cost_per_token(model=model, prompt_tokens=1000, completion_tokens=10)
        priced = True
    except Exception:
        priced = False
    assert priced is not unmapped, model
    if unmapped:
        with pytest.raises(litellm.exceptions.ModelNotMappedError):
            litellm.get_model_info(model)


def test_a_cost_map_fetched_over_the_network_leaves_nothing_surely_unmapped():
    snippet = (
        "import os\nos.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'False'\n"
        "from rlm_ray.models.model_names import surely_unmapped\n"
        "print(surely_unmapped('openai/scripted'))"
    )
    out = run_python("-c", snippet, timeout_s=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False"]


GATEWAY_LITELLM = """
import sys
import ray
from rlm_ray import RLM, runtime

def gateways_with_litellm(rlm):
    gateways = runtime.get_runtime(rlm.config).gateways
    probe = lambda gateway: "litellm" in sys.modules
    return sum(ray.get([g.__ray_call__.remote(probe) for g in gateways]))

url = sys.argv[1]
lean = RLM("openai/scripted", api_base=url, api_key="sk-t", max_retries=0)
result = lean.completion("q", "ctx")
print(result.answer, result.usage.cost_usd, gateways_with_litellm(lean), "litellm" in sys.modules)
mapped = RLM("openai/gpt-4o-mini", api_base=url, api_key="sk-t", max_retries=0)
result = mapped.completion("q", "ctx")
print(result.answer, result.usage.cost_usd > 0, gateways_with_litellm(mapped) > 0)
"""


@pytest.mark.ray
def test_a_run_on_an_unmapped_server_model_never_loads_litellm(model_server):
    """A fresh process and Ray of its own: the gateways of a run whose model litellm's map does
    not hold serve it without ever importing litellm; a model it prices still gets its price."""
    model_server.reply = lambda request: "FINAL(ok)"
    out = run_python("-c", GATEWAY_LITELLM, model_server.url, timeout_s=240)
    assert out.returncode == 0, out.stderr[-3000:]
    lean, mapped = out.stdout.splitlines()[-2:]
    assert lean.split() == ["ok", "0.0", "0", "False"]
    assert mapped.split() == ["ok", "True", "True"]


@pytest.mark.ray
def test_the_context_window_comes_from_a_gateway(make_rlm, model_server):
    from rlm_ray.models import llm

    model_server.reply = turns("FINAL(ok)")
    rlm = make_rlm(model="openai/gpt-4o-mini", sub_model="openai/unmapped-model-xyz")
    assert rlm.completion("q", "ctx").answer == "ok"
    assert rlm.launcher._windows == {  # asked of a gateway during the run
        "openai/gpt-4o-mini": llm.context_window("openai/gpt-4o-mini"),
        "openai/unmapped-model-xyz": llm.DEFAULT_CONTEXT_WINDOW,
    }
    fixed = make_rlm(context_window_tokens=5000)
    assert fixed.launcher.windows() == (5000, 5000)


def _slow_first_turn(request):
    return Reply(content="FINAL(done)", delay_s=3.0)


@pytest.mark.ray
def test_child_workers_are_started_when_a_deep_run_begins(make_rlm, model_server):
    from rlm_ray import runtime
    from rlm_ray.runtime.idle_workers import children_to_warm

    # a pool of its own (the runtime key includes repl_memory_mb): no idle workers from others
    model_server.reply = turns("FINAL(ok)")
    shallow = make_rlm(max_depth=1, repl_memory_mb=1999)
    assert shallow.completion("q", "ctx").answer == "ok"
    pool = runtime.get_runtime(shallow.config).pool
    assert ray.get(pool.stats.remote())["idle"] == 1  # the root's worker, back in the pool

    model_server.reply = by_marker({}, default=_slow_first_turn)
    deep = make_rlm(max_depth=2, repl_memory_mb=1999)
    capacity = ray.get(pool.stats.remote())["capacity"]
    warm = children_to_warm(deep.config, ray.cluster_resources()["CPU"], capacity)
    before = model_server.request_count
    box = {}
    thread = threading.Thread(target=lambda: box.update(result=deep.completion("q", "ctx")))
    thread.start()
    try:
        wait_for(lambda: model_server.request_count > before, 60, "the root's first turn")
        # the first turn is in flight: the children's workers are there already
        stats = ray.get(pool.stats.remote())
        assert stats["idle"] + stats["running"] >= warm + 1, stats
    finally:
        thread.join(60)
    assert box["result"].answer == "done"
    assert ray.get(pool.stats.remote())["idle"] == warm + 1


SLOW_ROOT = by_marker(
    {},
    default=turns(
        Reply(content=code("x = recursive_llm('KID', 'c')\nFINAL(x)"), delay_s=30.0),
    ),
)


@pytest.mark.ray
def test_ctrl_c_while_the_runtime_warms_up_leaves_no_actor(model_server, tmp_path, ray_session):
    """Ctrl-C during the root's first turn: gateways warming, child workers starting."""
    model_server.reply = SLOW_ROOT
    (tmp_path / "ctx.txt").write_text("some context")
    address = ray_session.get_runtime_context().gcs_address
    args = ["--model", "openai/scripted", "--api-base", model_server.url, "--api-key", "sk-t"]
    args += ["--context", str(tmp_path / "ctx.txt"), "--query", "q", "--max-depth", "2"]
    cli = start_cli("run", *args, "--address", address, "--quiet")
    try:
        wait_for(lambda: model_server.request_count >= 1, 120, "the root's first turn")
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 130, err
    assert out == ""
    dead_jobs = {j["JobID"] for j in ray.state.jobs() if j["IsDead"]}

    def actors_of_dead_drivers_alive():
        return [
            a
            for a in ray.state.actors().values()
            if a["JobID"] in dead_jobs and a["State"] != "DEAD"
        ]

    wait_for(lambda: not actors_of_dead_drivers_alive(), 30, "the CLI's actors to be freed")
