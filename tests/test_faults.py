"""Faults really caused on the local Ray: a REPL process killed mid-cell, model-server faults.

The multi-node faults (a node killed mid-run, the driver killed) are in test_multinode.py.
"""

from __future__ import annotations

import threading

import pytest
from helpers import summary_numbers, trace_sums, wait_for

from rlm_ray.errors import LLMError, SandboxError
from rlm_ray.testing import FAULTS, Reply, by_marker, code, turns

pytestmark = pytest.mark.ray


def run_in_thread(fn):
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def kill_repl_of_root(rlm) -> None:
    """Hard-kill the REPL worker process running the (only) root call of `rlm`'s pool."""
    import ray

    from rlm_ray import runtime

    pool = runtime.get_runtime(rlm.config).pool
    workers = ray.get(pool.workers.remote())
    roots = [handle for call_id, handle in workers.items() if "." not in call_id]
    assert len(roots) == 1, workers
    ray.kill(roots[0], no_restart=True)


# The root's only cell waits on a slow leaf call: the REPL is killed while the cell runs.
# After the loss the model is told ("REPL LOST") and writes the cell again.
LOST_SCRIPT = by_marker(
    {"SLOW-LEAF": Reply(content="41", delay_s=1.5)},
    default=lambda r: (
        code("x = int(llm_query('SLOW-LEAF')) + 1\nFINAL(x)")
        if r.turn == 0 or "REPL LOST" in r.last_user
        else "FINAL(the model was not told)"
    ),
)


def test_a_repl_killed_mid_cell_is_replaced_and_the_model_told(make_rlm, model_server):
    model_server.reply = LOST_SCRIPT
    rlm = make_rlm(max_repl_actors_per_node=2)
    slow = lambda: sum("SLOW-LEAF" in r.first_user for r in model_server.requests)  # noqa: E731
    thread, box = run_in_thread(lambda: rlm.completion("q", "ctx"))
    wait_for(lambda: slow() >= 1, what="the cell to wait on its leaf call")
    kill_repl_of_root(rlm)
    thread.join(120)
    assert "error" not in box, box.get("error")
    result = box["value"]
    assert result.answer == "42"
    assert result.trace.repl_restarts == 1
    assert len(result.trace.iterations) == 2  # the lost turn is kept in the trace
    told = [r for r in model_server.requests if "REPL LOST" in r.last_user]
    assert len(told) == 1 and "variable you defined is gone" in told[0].last_user
    assert told[0].turn == 1  # the conversation went on from the lost turn, not from scratch
    assert slow() == 2


def test_after_a_repl_is_lost_usage_and_the_printed_summary_equal_the_trace(
    make_rlm, model_server, tmp_path
):
    """The leaf call the lost REPL waited on still ran (the gateway counted it), but neither the
    trace nor the usage has it: the summary the CLI prints must say what the trace says."""
    import io

    from rlm_ray.cli.progress_display import ProgressDisplay
    from rlm_ray.trace import read_trace, write_trace

    model_server.reply = LOST_SCRIPT
    rlm = make_rlm(max_repl_actors_per_node=2)
    printed = io.StringIO()
    slow = lambda: sum("SLOW-LEAF" in r.first_user for r in model_server.requests)  # noqa: E731

    def run():
        with ProgressDisplay(printed) as display:  # what `rlm-ray run` draws on stderr
            rlm.on_progress = display.update
            return rlm.completion("q", "ctx")

    thread, box = run_in_thread(run)
    wait_for(lambda: slow() >= 1, what="the cell to wait on its leaf call")
    kill_repl_of_root(rlm)
    thread.join(120)
    assert "error" not in box, box.get("error")
    result = box["value"]
    assert result.answer == "42" and result.trace.repl_restarts == 1
    usage = result.usage
    assert (usage.calls, usage.input_tokens, usage.output_tokens) == trace_sums(result.trace)
    write_trace(result.trace, tmp_path / "run.jsonl")
    root = read_trace(tmp_path / "run.jsonl")[0]
    in_file = (root["total_calls"], root["total_input_tokens"], root["total_output_tokens"])
    assert in_file == trace_sums(result.trace) == (3, usage.input_tokens, usage.output_tokens)
    assert summary_numbers(printed.getvalue()) == in_file, printed.getvalue()


def test_a_call_that_loses_its_repl_too_often_fails_with_sandbox_error(make_rlm, model_server):
    model_server.reply = LOST_SCRIPT
    rlm = make_rlm(max_repl_actors_per_node=2, max_repl_restarts=0)
    slow = lambda: sum("SLOW-LEAF" in r.first_user for r in model_server.requests)  # noqa: E731
    thread, box = run_in_thread(lambda: rlm.completion("q", "ctx"))
    wait_for(lambda: slow() >= 1, what="the cell to wait on its leaf call")
    kill_repl_of_root(rlm)
    thread.join(120)
    error = box.get("error")
    assert isinstance(error, SandboxError), box
    assert "was lost 1 times" in str(error) and "max_repl_restarts" in str(error)


def test_20_percent_faults_on_root_turns_children_and_leaves(make_rlm, model_server):
    """Every fault kind at 20 %: root turns, child turns and leaf calls alike get faults.

    The calls are made one after another (plain loops, each `int(...)` waits; a comprehension
    would run them in parallel), so which request gets which fault is fixed by the seed."""
    child = turns(code("r = llm_query('LEAF')\nFINAL(int(r) * 2)"))
    model_server.reply = by_marker(
        {"LEAF": "1", "CHILD": child},
        default=turns(
            code(
                "rs = []\nfor i in range(3):\n    rs.append(int(recursive_llm(f'CHILD {i}', f'p{i}')))\n"
                "ls = []\nfor i in range(8):\n    ls.append(int(llm_query(f'LEAF {i}')))\n"
                "total = sum(rs) + sum(ls)"
            ),
            "FINAL_VAR(total)",
        ),
    )
    model_server.fault_rate = 0.2
    model_server.seed = 18
    model_server.timeout_fault_s = 3.0
    result = make_rlm(max_depth=2, max_retries=8, request_timeout_s=1.0).completion("q", "ctx")
    assert result.answer == "14"
    where = {
        ("leaf" if not r.system else "child" if "CHILD" in r.first_user else "root")
        for _, r in model_server.fault_log
    }
    assert where == {"root", "child", "leaf"}, model_server.fault_log
    kinds = {kind for kind, _ in model_server.fault_log}
    assert len(kinds) >= 5, kinds


@pytest.mark.parametrize(
    "fault, kind, status",
    [
        ("429", "rate limited (HTTP 429)", 429),
        ("500", "server error (HTTP 500)", 500),
        ("502", "server error (HTTP 502)", 502),
        ("timeout", "timed out", None),
        ("drop", "connection failed or dropped", None),
        ("malformed", "malformed response (not valid JSON)", None),
    ],
)
def test_exhausted_retries_name_what_failed(make_rlm, model_server, fault, kind, status):
    model_server.reply = turns("FINAL(never)")
    model_server.fault_rate = 1.0
    model_server.faults = (fault,)
    model_server.timeout_fault_s = 2.0
    with pytest.raises(LLMError) as caught:
        make_rlm(max_retries=1, request_timeout_s=0.5).completion("q", "ctx")
    error = caught.value
    message = str(error)
    assert f"failed after 2 attempts: {kind}: " in message, message
    assert "'openai/scripted'" in message and model_server.url in message, message
    assert (error.kind, error.status_code, error.attempts) == (kind, status, 2)
    assert error.model == "openai/scripted"
    assert model_server.request_count == 2


def test_fault_kinds_are_all_known():
    assert set(FAULTS) == {"429", "500", "502", "timeout", "drop", "malformed"}
