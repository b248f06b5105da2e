"""Sessions: follow-up questions in one REPL whose variables persist (`RLM.session`).

Over the scripted server on the session's Ray; the pinned worker is really killed between two
questions, and a session that is closed, dropped or left at driver exit frees its worker.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import textwrap

import pytest
import ray
from helpers import run_cli, run_python, wait_for

from rlm_ray.errors import ConfigError, LimitExceededError, SandboxError
from rlm_ray.testing import Reply, code

pytestmark = pytest.mark.ray


def query_of(request) -> str:
    """The question of a root turn (the text after the last "Query:" of its first message)."""
    return request.first_user.rsplit("Query:", 1)[-1].strip()


def by_question(answers: dict, leaf: str = "41"):
    """A reply function: a leaf call (no system prompt) answers `leaf`; a root call answers by
    its question, `answers[question]` being one reply or a list of replies by turn."""

    def reply(request):
        if not request.system:
            return leaf
        replies = answers[query_of(request)]
        if callable(replies):
            return replies(request)
        if isinstance(replies, str):
            return replies
        return replies[min(request.turn, len(replies) - 1)]

    return reply


def pool_of(rlm):
    from rlm_ray import runtime

    return runtime.get_runtime(rlm.config).pool


def actor_state(handle) -> str:
    return ray.state.actors(handle._actor_id.hex())["State"]


def test_variables_and_history_persist_across_questions(make_rlm, model_server):
    model_server.reply = by_question(
        {
            "Q-ONE": code("notes = [3, 4, 5]\nFINAL('three notes')"),
            "Q-TWO": code("FINAL(sum(notes))"),
        }
    )
    rlm = make_rlm()
    with rlm.session("the context") as s:
        first = s.completion("Q-ONE")
        second = s.completion("Q-TWO")
    assert (first.answer, second.answer) == ("three notes", "12")
    asked = [r for r in model_server.requests if r.system]
    assert "follow-up" not in asked[0].first_user  # the first question: the usual first turn
    follow_up = asked[1].first_user
    assert "notes: list (3 items) of int" in follow_up
    assert "Q1: Q-ONE\nA1: three notes" in follow_up
    # one pinned worker, one context in the object store for the whole session
    assert first.trace.actor_id == second.trace.actor_id
    assert first.trace.context_id == second.trace.context_id != ""
    assert s.usage.calls == first.usage.calls + second.usage.calls == 2
    assert s.history == [("Q-ONE", "three notes"), ("Q-TWO", "12")]


def test_history_is_bounded_and_braces_are_kept(make_rlm, model_server):
    model_server.reply = by_question(
        {f"Q{i}" + "x" * 400: code("d = {'k': 1}\nFINAL('{a} ' * 300)") for i in range(7)}
    )
    with make_rlm().session("ctx") as s:
        for i in range(7):
            s.completion(f"Q{i}" + "x" * 400)
    last = [r for r in model_server.requests if r.system][-1].first_user
    assert "(1 earlier question(s) not shown)" in last and "Q2: Q1xxx" in last
    assert "d: dict (1 items)" in last and "{a} {a}" in last
    assert len(last) < 6000


def test_the_pinned_worker_counts_against_the_pool_and_is_freed_on_close(make_rlm, model_server):
    model_server.reply = by_question({"Q": code("FINAL('ok')")})
    rlm = make_rlm()
    pool = pool_of(rlm)
    s = rlm.session("ctx")
    stats = ray.get(pool.stats.remote())
    assert stats["sessions"] == 1 and stats["held"] == {0: 1}
    worker = ray.get(pool.session_workers.remote())[s.session_id]
    assert s.completion("Q").answer == "ok"
    s.close()
    s.close()  # idempotent
    stats = ray.get(pool.stats.remote())
    assert stats["sessions"] == 0 and not stats["held"]
    wait_for(lambda: actor_state(worker) == "DEAD", 30, "the session's worker to be gone")
    with pytest.raises(ConfigError, match="is closed"):
        s.completion("Q")


def test_a_full_pool_refuses_a_session_clearly(make_rlm, model_server):
    rlm = make_rlm(max_repl_actors_per_node=2)  # the pool of test_faults.py: no new one
    with rlm.session("ctx"), rlm.session("ctx"):
        with pytest.raises(SandboxError, match="no REPL slot became free.*2 by open sessions"):
            rlm.session("ctx", open_timeout_s=0.5)
    with rlm.session("ctx"):  # the slots came back
        pass


def test_a_dropped_session_is_closed_by_garbage_collection(make_rlm, model_server):
    rlm = make_rlm()
    pool = pool_of(rlm)
    s = rlm.session("ctx")
    worker = ray.get(pool.session_workers.remote())[s.session_id]
    del s
    gc.collect()
    wait_for(lambda: ray.get(pool.stats.remote())["sessions"] == 0, 30, "the session to close")
    wait_for(lambda: actor_state(worker) == "DEAD", 30, "the session's worker to be gone")


def test_a_killed_worker_is_replaced_and_pure_cells_are_rerun(make_rlm, model_server):
    model_server.reply = by_question(
        {
            "Q-ONE": [
                code("base = 20\nwords = context.split()"),
                code("leaf = llm_query('LEAF')\nFINAL('set')"),
            ],
            "Q-TWO": code("FINAL(base + len(words))"),
        }
    )
    rlm = make_rlm()
    with rlm.session("one two three") as s:
        first = s.completion("Q-ONE")
        assert first.answer == "set"
        os.kill(first.trace.pid, signal.SIGKILL)  # the process, as the OOM killer would
        second = s.completion("Q-TWO")
    assert second.answer == "23"
    told = [r for r in model_server.requests if r.system][-1].first_user
    assert "REPL RESTORED" in told
    assert "These variables are LOST (compute them again if you need them): leaf" in told
    assert "base: int" in told and "words: list (3 items) of str" in told
    assert second.trace.repl_restarts == 0  # lost between questions: not this question's loss
    assert second.trace.pid != first.trace.pid
    assert sum(1 for r in model_server.requests if not r.system) == 1  # LEAF not asked again


def test_with_the_call_cache_cells_with_subcalls_are_rerun_too(make_rlm, model_server, tmp_path):
    model_server.reply = by_question(
        {
            "Q-ONE": code("leaf = int(llm_query('LEAF')) + 1\nFINAL('set')"),
            "Q-TWO": code("FINAL(leaf)"),
        }
    )
    rlm = make_rlm(cache_dir=tmp_path / "cache")
    with rlm.session("ctx") as s:
        s.completion("Q-ONE")
        # between questions the pool lists the session's worker like a running call's
        ray.kill(ray.get(pool_of(rlm).workers.remote())[s.session_id], no_restart=True)
        second = s.completion("Q-TWO")
    assert second.answer == "42"
    assert "No variable was lost" in [r for r in model_server.requests if r.system][-1].first_user
    assert sum(1 for r in model_server.requests if not r.system) == 1  # from the cache
    assert second.usage.cached_calls == 1


def test_acompletion_and_a_failed_question(make_rlm, model_server):
    model_server.reply = by_question(
        {
            "Q-ONE": code("x = 1\nFINAL('one')"),
            "Q-BAD": code("x = [llm_query(f'L{i}') for i in range(3)]"),
        }
    )
    rlm = make_rlm(max_sub_calls=1)

    async def ask():
        with rlm.session("ctx") as s:
            one = await s.acompletion("Q-ONE")
            with pytest.raises(LimitExceededError):
                await s.acompletion("Q-BAD")
            return one, s.history

    one, history = asyncio.run(ask())
    assert one.answer == "one" and history[1][1].startswith("(no answer:")


def test_an_unclosed_session_frees_its_actors_at_driver_exit(model_server, ray_session):
    model_server.reply = by_question({"Q": code("FINAL('ok')")})
    address = ray_session.get_runtime_context().gcs_address
    script = textwrap.dedent(
        f"""
        import ray
        from rlm_ray import RLM
        rlm = RLM("openai/scripted", api_base={model_server.url!r}, api_key="k", address={address!r})
        s = rlm.session("ctx")
        print(s.completion("Q").answer)
        print(ray.get_runtime_context().get_job_id())
        """
    )
    done = run_python("-c", script, timeout_s=300)  # a new driver's runtime: slow under load
    assert done.returncode == 0, done.stderr
    answer, job = done.stdout.split()
    assert answer == "ok"

    def alive():
        return [
            a for a in ray.state.actors().values() if a["JobID"] == job and a["State"] != "DEAD"
        ]

    wait_for(lambda: not alive(), 60, lambda: f"the driver's actors to go: {alive()}")


def test_chat_reads_questions_from_a_pipe(model_server, ray_session, tmp_path):
    model_server.reply = by_question(
        {"Q-ONE": code("n = len(context)\nFINAL(n)"), "Q-TWO": code("FINAL(n * 2)")}
    )
    path = tmp_path / "ctx.txt"
    path.write_text("0123456789")
    address = ray_session.get_runtime_context().gcs_address
    args = ["--model", "openai/scripted", "--api-base", model_server.url, "--api-key", "k"]
    done = run_cli(
        "chat", *args, "--context", str(path), "--address", address, "--quiet",
        stdin="Q-ONE\n\nQ-TWO\nquit\nQ-NEVER\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["10", "20"]
    assert not any("Q-NEVER" in r.text for r in model_server.requests)


def test_chat_refuses_stdin_as_context(tmp_path):
    done = run_cli("chat", "--model", "openai/scripted", "--context", "-", stdin="q\n")
    assert done.returncode == 1
    assert "chat reads its questions from stdin" in done.stderr


def test_a_session_of_an_invalid_context_fails_before_ray_work(make_rlm):
    with pytest.raises(ConfigError, match="empty"):
        make_rlm().session("")
    with pytest.raises(ConfigError, match="max_depth"):
        make_rlm(max_depth=0).session("ctx")
    with pytest.raises(ConfigError, match="open_timeout_s"):
        make_rlm().session("ctx", open_timeout_s=-1)


def test_a_question_answer_with_a_slow_leaf(make_rlm, model_server):
    model_server.reply = by_question(
        {"Q": code("r = llm_query('LEAF')\nFINAL(r)")}, leaf=Reply(content="7", delay_s=0.2)
    )
    with make_rlm().session("ctx") as s:
        assert s.completion("Q").answer == "7"


def test_a_worker_killed_mid_question_resumes_with_the_session_restored(make_rlm, model_server):
    import threading

    model_server.reply = by_question(
        {
            "Q-ONE": code("base = 20\nFINAL('set')"),
            "Q-TWO": lambda r: (
                code("x = int(llm_query('SLOW-LEAF'))\nFINAL(base + x)")
                if r.turn == 0 or "REPL RESTORED" in r.last_user
                else "FINAL(the model was not told)"
            ),
        },
        leaf=Reply(content="22", delay_s=1.5),
    )
    rlm = make_rlm()
    pool = pool_of(rlm)
    slow = lambda: sum(1 for r in model_server.requests if not r.system)  # noqa: E731
    with rlm.session("ctx") as s:
        s.completion("Q-ONE")
        box: dict = {}
        thread = threading.Thread(target=lambda: box.update(r=s.completion("Q-TWO")))
        thread.start()
        wait_for(lambda: slow() >= 1, what="the cell to wait on its leaf call")
        ray.kill(ray.get(pool.session_workers.remote())[s.session_id], no_restart=True)
        thread.join(120)
    assert box["r"].answer == "42" and box["r"].trace.repl_restarts == 1
    told = [r for r in model_server.requests if r.system][-1].last_user
    assert "REPL LOST" in told and "REPL RESTORED" in told and "No variable was lost" in told


def test_chat_writes_one_trace_root_per_question_and_exits_1_if_one_failed(
    model_server, ray_session, tmp_path, capsys, monkeypatch
):
    """`chat --trace FILE` (issue 30): the file holds each question's call tree, in order, and
    `rlm-ray trace` shows them all; a failed question is reported, the chat goes on, and the
    exit code says something failed."""
    import io
    import json
    import sys

    from rlm_ray.cli import main

    model_server.reply = by_question(
        {
            "Q-ONE": code("n = len(context)\nFINAL(n)"),
            "Q-BAD": code("llm_query('more')"),  # over the budget of 0 sub-calls: an error
            "Q-TWO": code("FINAL(n * 2)"),
        }
    )
    path, trace = tmp_path / "ctx.txt", tmp_path / "chat.jsonl"
    path.write_text("0123456789")
    monkeypatch.setattr(sys, "stdin", io.StringIO("Q-ONE\nQ-BAD\nQ-TWO\n"))
    args = ["--model", "openai/scripted", "--api-base", model_server.url, "--api-key", "k"]
    capsys.readouterr()
    status = main(
        ["chat", *args, "--context", str(path), "--trace", str(trace), "--quiet"]
        + ["--max-sub-calls", "0"]
    )
    out, err = capsys.readouterr()
    assert status == 1, err
    assert out.split() == ["10", "20"] and "rlm-ray: error:" in err
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    roots = [r for r in records if r["parent_id"] is None]
    assert [r["query"] for r in roots] == ["Q-ONE", "Q-BAD", "Q-TWO"]
    assert main(["trace", str(trace)]) == 0
    shown = capsys.readouterr().out
    assert all(q in shown for q in ("Q-ONE", "Q-BAD", "Q-TWO"))
    with pytest.raises(ConfigError, match="3 runs"):
        from rlm_ray import Program

        Program.from_file(trace)
