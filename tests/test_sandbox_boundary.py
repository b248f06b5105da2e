"""The boundary of a cell: model-made objects never run outside it (issue 9), in-process part.

Every attack defines a class in a cell whose methods carry a payload: read the environment and
write it to a file. Inside the sandbox `open` does not exist, so the payload only does harm if
the method runs elsewhere: in host code after the cell (with no time limit), or in another
process that rebuilt the class with the real builtins. Each test asserts the file was never
written, that the cell got a clear error, and that it all ended within 2x the cell's limit.
The attacks that need Ray (the gateway, the pool, a child REPL, the driver) are in
test_sandbox_boundary_ray.py.
"""

from __future__ import annotations

import pickle
import textwrap
import time

import pytest
from ray import cloudpickle

from rlm_ray import corpus
from rlm_ray.core.repl import REPLSession, REPLSettings
from rlm_ray.core.turns import AnswerError
from rlm_ray.sandbox import Sandbox
from rlm_ray.sandbox.boundary import plain
from rlm_ray.sandbox.output import CellOutput
from rlm_ray.testing.local_corpus import local_corpus
from rlm_ray.types import LLMReply


def payload(path) -> str:
    """Model code that reads the environment and writes it to `path`, if it ever can."""
    return f"open({str(path)!r}, 'w').write(open('/proc/self/environ').read())"


class PicklingBackend:
    """Ships what the REPL hands over the way Ray does (cloudpickle), then rebuilds it."""

    def __init__(self) -> None:
        self.sent: list = []

    def _ship(self, *values):
        rebuilt = cloudpickle.loads(cloudpickle.dumps(values))
        self.sent.append(rebuilt)
        return rebuilt

    def start_llm(self, prompt, model):
        prompt, model = self._ship(prompt, model)
        str(model).split("/")  # what litellm does with a model name
        return LLMReply(text="reply", model="fake")

    def start_rlm(self, query, context, model):
        self._ship(query, context, model)
        return LLMReply(text="child", model="fake")

    def fetch(self, handles):
        return [(True, h) for h in handles]

    def cancel(self, handles):
        pass


def session(context="ctx", *, cell_timeout_s=0.5, can_recurse=True):
    backend = PicklingBackend()
    settings = REPLSettings(can_recurse=can_recurse, cell_timeout_s=cell_timeout_s)
    return REPLSession(context, backend, "fake", settings), backend


def run(repl, code):
    return repl.run(textwrap.dedent(code))


# -- A: objects that would be rebuilt elsewhere with the real builtins -------------------------

SHIPPED = {
    "str subclass as model name": """
        class M(str):
            def split(self, *a):
                {payload}
            def lower(self):
                {payload}
        llm_query('hi', model=M('openai/x'))
    """,
    "str subclass as prompt": """
        class P(str):
            def split(self, *a):
                {payload}
        llm_query(P('hi'))
    """,
    "list subclass as child context": """
        class L(list):
            def extend(self, items):
                {payload}
        rlm_query('q', L(['x']))
    """,
    "dict subclass inside a child context": """
        class D(dict):
            def get(self, *a):
                {payload}
        rlm_query('q', {{'rows': [D(a=1)]}})
    """,
    "function inside a prompt list": """
        def f():
            {payload}
        llm_query(['a', f])
    """,
    "instance inside batched prompts": """
        class P(str):
            def split(self, *a):
                {payload}
        llm_query_batched(['a', P('b')])
    """,
}


@pytest.mark.parametrize("attack", list(SHIPPED.values()), ids=list(SHIPPED))
def test_model_objects_never_cross_to_the_host(tmp_path, attack):
    target = tmp_path / "pwned"
    repl, backend = session()
    report = run(repl, attack.format(payload=payload(target)))
    assert report.trace.error is not None and "must be plain data" in report.trace.error
    assert backend.sent == []  # refused before anything was handed over
    assert not target.exists()


def test_plain_copies_exact_data_and_rebuilds_views():
    value = {"a": [1, 2.5, True, None, ("x", "y")], "b": {"c": "d"}}
    copied = plain(value, "v")
    assert copied == value and copied is not value and copied["a"] is not value["a"]
    with pytest.raises(TypeError, match="got set"):
        plain({1, 2}, "v")
    with pytest.raises(ValueError, match="nested deeper"):
        deep: list = []
        for _ in range(100):
            deep = [deep]
        plain(deep, "v")


def test_classes_and_functions_defined_in_a_cell_cannot_be_pickled():
    sb = Sandbox(cell_timeout_s=2.0)
    outcome = sb.run(
        "class A:\n    pass\nclass E(ValueError):\n    pass\ndef f():\n    return 1\n"
        "objects = [A(), A, E('x'), f, lambda: 1]"
    )
    assert outcome.error is None, outcome.error
    for obj in sb.namespace["objects"]:
        for dumps in (cloudpickle.dumps, pickle.dumps):
            with pytest.raises(Exception, match="defined in the REPL|Can't pickle|can't pickle"):
                dumps(obj)


# -- B: host code reading model-made values after the cell -------------------------------------

SLOW = "while True: pass"  # never ends on its own

HOST_READS = {
    "answer as a dict subclass": """
        class A(dict):
            def get(self, *a):
                {slow}
        answer = A(content='x', ready=True)
    """,
    "answer content as a Counter subclass": """
        import collections
        class C(collections.Counter):
            def items(self):
                {slow}
        answer = {{'content': C(a=1), 'ready': True}}
    """,
    "answer.get raising a model exception": """
        class Boom(Exception):
            def __init__(self, *a):
                {slow}
        class A(dict):
            def get(self, *a):
                raise Boom()
        answer = A(content='x', ready=True)
    """,
}


@pytest.mark.parametrize("attack", list(HOST_READS.values()), ids=list(HOST_READS))
def test_host_reads_run_inside_the_cells_clock(attack):
    repl, _ = session(cell_timeout_s=0.5)
    started = time.monotonic()
    report = run(repl, attack.format(slow=SLOW))
    try:
        answer = repl.ready_answer()
    except AnswerError as exc:
        answer = str(exc)
    assert time.monotonic() - started < 2 * 0.5 + 0.5
    assert answer is None or type(answer) is str
    assert report.trace.timed_out or answer is None or "could not be computed" in answer


def test_final_var_named_in_text_is_read_inside_a_clock():
    repl, _ = session(cell_timeout_s=0.5)
    report = run(
        repl,
        f"""
        import collections
        class O(collections.OrderedDict):
            def items(self):
                {SLOW}
        result = O(a=1)
        """,
    )
    assert report.trace.error is None
    started = time.monotonic()
    with pytest.raises(AnswerError, match="timed out"):
        repl.lookup("result")
    assert time.monotonic() - started < 2 * 0.5 + 0.5


def test_a_str_returned_by_the_model_is_an_exact_str():
    repl, _ = session()
    report = run(repl, "class S(str):\n    def strip(self):\n        return 'x'\nFINAL(S('ok'))")
    assert report.final == "ok" and type(report.final) is str


def test_settling_futures_never_walks_a_container_the_model_defined():
    repl, _ = session(cell_timeout_s=0.5)
    started = time.monotonic()
    report = run(
        repl,
        f"""
        class D(dict):
            def items(self):
                {SLOW}
        class T(tuple):
            def count(self, *a):
                {SLOW}
        d = D(a=llm_query('x'))
        t = T([llm_query('y')])
        """,
    )
    assert report.trace.error is None, report.trace.error
    assert time.monotonic() - started < 2 * 0.5
    assert type(repl.sandbox.namespace["t"]).__name__ == "T"  # never rebuilt by the host


# -- type() and .mro() hand out no class of the runtime ------------------------------------------


@pytest.fixture
def view():
    import pyarrow as pa

    return local_corpus(pa.table({"text": ["alpha beta " * 200, "gamma"]}), chunk_size=1000)


def test_type_of_a_corpus_view_is_a_stand_in(view, tmp_path):
    repl, _ = session(view)
    report = run(
        repl,
        """
        K = type(context)
        print(K, isinstance(context, K), isinstance(context[0:3], K))
        """,
    )
    assert report.trace.error is None, report.trace.error
    assert report.trace.output == "<class 'Corpus'> True True\n"
    for attack in (
        "type(context)(context)",
        "class Fake:\n    bounds = (0, 1)\ntype(context)(Fake())",
        "class Sub(type(context)):\n    pass",
        "type(context).mro()",
        "type(context.documents)(context, 0, 1)",
        "type(print)(lambda: None)",
    ):
        assert run(repl, attack).trace.error is not None, attack


def test_mro_hands_out_stand_ins_for_runtime_classes():
    repl, _ = session()
    report = run(repl, "print(SubCallError.mro())")
    assert report.trace.error is None, report.trace.error
    assert "rlm_ray.errors.RLMError" not in report.trace.output
    assert "<class 'RLMError'>" in report.trace.output


def test_a_corpus_view_refuses_a_source_that_is_not_the_runtimes():
    class Fake:
        bounds = (0, 10)

    with pytest.raises(TypeError, match="only be made by the runtime"):
        corpus.Corpus(Fake())  # type: ignore[arg-type]


# -- C: the smaller holes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "list.clear(context)",
        "list.append(context, 'x')",
        "import heapq\nheapq.heapify(context)",
        "from heapq import heappush\nheappush(context, 'x')",
        "import bisect\nbisect.insort(context, 'x')",
    ],
)
def test_an_injected_list_cannot_be_mutated_through_unbound_functions(code):
    repl, _ = session(["b", "a"])
    report = run(repl, code)
    assert report.trace.error is not None and "read-only" in report.trace.error
    assert repl.sandbox.namespace["context"] == ["b", "a"]


def test_the_dropped_note_counts_every_dropped_character(monkeypatch):
    monkeypatch.setattr(CellOutput, "MAX_CHARS", 10)
    out = CellOutput()
    for _ in range(5):
        out.write("abcdef")
    assert out.text().endswith("[sandbox: 20 more characters dropped]\n")


def test_a_cell_that_keeps_the_memory_after_memory_error_leaves_the_repl_usable():
    sb = Sandbox(cell_timeout_s=0.5)
    # The next cell cannot start its watchdog thread: the REPL says so instead of raising.
    real_open = sb._clock.open

    def failing_open():
        raise RuntimeError("can't start new thread")

    sb._clock.open = failing_open  # type: ignore[method-assign]
    outcome = sb.run("x = 1")
    assert outcome.error is not None and "out of memory" in outcome.error
    sb._clock.open = real_open  # type: ignore[method-assign]
    time.sleep(0.7)  # nothing of the failed cell fires later
    assert sb.run("y = 2").error is None


def test_a_cell_that_keeps_memory_after_memory_error_leaves_a_usable_repl_for_real():
    """Under a real memory cap: fill it, catch MemoryError, keep the memory; the next cells get
    a clear error or run, and never raise out of `Sandbox.run`."""
    script = textwrap.dedent(
        """
        import json
        from rlm_ray.sandbox import Sandbox, limit_memory
        limit_memory(300)
        sb = Sandbox(cell_timeout_s=5.0)
        fill = sb.run(
            "x = []\\ntry:\\n    while True:\\n        x.append('x' * 10 ** 6)\\n"
            "except MemoryError:\\n    pass"
        )
        after = [sb.run("y = [1] * 1000\\nlen(y)") for _ in range(3)]
        freed = sb.run("del x\\nz = 'z' * (50 * 10 ** 6)\\nlen(z)")
        print(json.dumps([fill.error, [a.error for a in after], freed.error, freed.stdout]))
        """
    )
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    fill_error, after_errors, freed_error, freed_out = json.loads(
        done.stdout.strip().splitlines()[-1]
    )
    assert fill_error is None
    for error in after_errors:
        assert error is None or "memory" in error.lower()
    assert freed_error is None and freed_out == "50000000\n"
