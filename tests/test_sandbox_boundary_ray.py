"""The boundary of a cell through Ray: the gateway, the pool, a child REPL and the driver never
run model-defined code, and runaway C code or a crash ends in a restarted REPL (issue 9).

Each payload reads the environment and writes it to a file, which only works where the
payload's class was rebuilt with the real builtins. Every run goes through litellm over HTTP to
the scripted server, and the REPL workers, gateways and pool are real Ray actors.
"""

from __future__ import annotations

import time

import pyarrow as pa
import pytest

import rlm_ray
from rlm_ray.testing import by_marker, code, turns

pytestmark = pytest.mark.ray


def payload(path) -> str:
    return f"open({str(path)!r}, 'w').write(open('/proc/self/environ').read())"


def told_then_final(first_code: str, marker: str = "defined in the REPL"):
    """Turn 0 runs the attack; the next turn answers whether the model saw `marker`."""
    return turns(
        code(first_code),
        lambda r: "FINAL(refused)" if marker in r.last_user else "FINAL(not refused)",
    )


ATTACKS = {
    # litellm calls .split/.lower on the model name inside the gateway actor
    "model name in the gateway": """
        class M(str):
            def split(self, *a):
                {payload}
            def lower(self):
                {payload}
        x = llm_query('hi', model=M('openai/scripted'))
        print(x)
    """,
    # pickle's APPENDS calls .extend while the pool and the child worker rebuild the context
    "child context in the pool and the child REPL": """
        class L(list):
            def extend(self, items):
                {payload}
        x = rlm_query('q', L(['x']))
        print(x)
    """,
    # a model exception class raised out of a host read of `answer`, re-raised by Ray
    "exception out of answer.get into the pool and driver": """
        class Boom(Exception):
            def __init__(self, *a):
                {payload}
        class A(dict):
            def get(self, *a):
                raise Boom()
        answer = A(content='x', ready=True)
    """,
}


@pytest.mark.parametrize("attack", list(ATTACKS.values()), ids=list(ATTACKS))
def test_model_defined_code_never_runs_outside_its_cell(make_rlm, model_server, tmp_path, attack):
    target = tmp_path / "pwned"
    model_server.reply = by_marker(
        {"q\n": "FINAL(child)"},
        default=turns(
            code(attack.format(payload=payload(target))),
            lambda r: "FINAL(went on)",
        ),
    )
    result = make_rlm(max_depth=2, cell_timeout_s=2.0).completion("Q", "ctx")
    assert result.answer == "went on"
    assert not target.exists(), "model-defined code ran outside its cell"
    cells = [c for it in result.trace.iterations for c in it.cells]
    assert "defined in the REPL" in (cells[0].error or ""), cells[0]
    assert cells[0].duration_s < 2 * 2.0


def test_a_fake_corpus_source_cannot_be_built(make_rlm, model_server, tmp_path):
    target = tmp_path / "pwned"
    docs = pa.table({"text": [f"document {i} " * 50 for i in range(5)]})
    model_server.reply = told_then_final(
        f"""
        class Src:
            bounds = (0, 10)
            def tables(self, ks):
                {payload(target)}
        try:
            fake = type(context)(Src())
        except Exception as e:
            print('refused:', e)
        print(llm_query(['x', fake]))
        """,
        marker="refused",
    )
    result = make_rlm().completion("Q", docs)
    assert result.answer == "refused"
    assert not target.exists()


def test_runaway_regex_in_a_fan_out_thread_ends_in_a_restarted_repl(make_rlm, model_server):
    """C code holding the GIL starves every in-process stop; the kill switch ends the process
    and the call goes on in a new REPL from its checkpoint, the model told."""
    model_server.reply = by_marker(
        {"LEAF": "1"},
        default=lambda r: (
            "FINAL(recovered)"
            if "REPL LOST" in r.last_user
            else code(
                "import re\n"
                "r = [llm_query(f'LEAF {i}') + str(re.match('(a+)+$', 'a' * 40 + 'b'))"
                " for i in range(2)]"
            )
        ),
    )
    started = time.monotonic()
    result = make_rlm(cell_timeout_s=0.5).completion("Q", "ctx")
    elapsed = time.monotonic() - started
    assert result.answer == "recovered"
    assert result.trace.repl_restarts == 1
    assert elapsed < 30, elapsed


def test_a_crash_in_c_code_ends_in_a_restarted_repl(make_rlm, model_server):
    model_server.reply = lambda r: (
        "FINAL(recovered)"
        if "REPL LOST" in r.last_user
        else code("x = [1]\nfor i in range(300000):\n    x = map(abs, x)\nprint(list(x))")
    )
    result = make_rlm(cell_timeout_s=5.0).completion("Q", "ctx")
    assert result.answer == "recovered"
    assert result.trace.repl_restarts == 1


def test_a_256_wide_fan_out_fits_the_default_memory_cap(make_rlm, model_server):
    model_server.latency_s = 0.3
    model_server.reply = by_marker(
        {"LEAF": "1"},
        default=turns(code("r = [int(llm_query(f'LEAF {i}')) for i in range(256)]\nFINAL(sum(r))")),
    )
    rlm = make_rlm()
    assert rlm.config.max_concurrent_calls == 256 and rlm.config.repl_memory_mb == 2048
    assert rlm.completion("Q", "ctx").answer == "256"


def test_objects_of_cell_classes_cannot_be_put_in_the_object_store(ray_session):
    from rlm_ray.sandbox import Sandbox

    sb = Sandbox(cell_timeout_s=2.0)
    assert sb.run("class A(list):\n    pass\nobj = A([1])").error is None
    with pytest.raises(Exception, match="defined in the REPL"):
        ray_session.put(sb.namespace["obj"])
    assert rlm_ray  # the package imports cleanly beside Ray
