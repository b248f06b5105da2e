"""One declaration per sub-call kind (rlm_ray/subcall_kinds/): the names the REPL injects and the
sandbox plans fan-out around, the REPL's functions, the prompt's list and the backends' methods
all follow `KINDS`. In-process (`ThreadBackend`), no Ray."""

from __future__ import annotations

import inspect
import re

import pytest

from rlm_ray import subcall_kinds, tools
from rlm_ray.core.repl import REPLSession, REPLSettings
from rlm_ray.core.session_repl import ToolReplay
from rlm_ray.prompting import prompts
from rlm_ray.runtime.backend import RayBackend
from rlm_ray.subcall_kinds import KINDS, SUBCALL_NAMES
from rlm_ray.subcall_kinds.declare import PromptItem, SubCallKind
from rlm_ray.testing import FakeLLM, by_marker
from rlm_ray.testing.thread_backend import ThreadBackend

SIGNATURES = {
    "llm_query": "(prompt, model=None)",
    "llm_query_batched": "(prompts, model=None)",
    "recursive_llm": "(query, context=None)",
    "rlm_query": "(prompt, context=None, model=None)",
    "rlm_query_batched": "(prompts, contexts=None, model=None)",
    "llm_map": "(instruction, items, model=None)",
    "llm_filter": "(condition, items, model=None, *, recall=None, precision=None, confidence=None)",
    "llm_classify": "(items, labels, model=None, *, accuracy=None, confidence=None)",
    "llm_count": "(condition, items, model=None, *, error=None, confidence=None)",
}


def shape(function) -> str:
    """A signature without its annotations: "(a, b=None, *, c=None)"."""
    shown, star = [], False
    for p in inspect.signature(function).parameters.values():
        if p.kind is inspect.Parameter.KEYWORD_ONLY and not star:
            shown.append("*")
            star = True
        shown.append(p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default}")
    return f"({', '.join(shown)})"


def repl() -> REPLSession:
    backend = ThreadBackend(FakeLLM(by_marker({}, default="ok")))
    return REPLSession("ctx", backend, "fake", REPLSettings(can_recurse=False))


def test_the_repl_gives_the_model_every_declared_kind_with_its_signature():
    session = repl()
    assert SUBCALL_NAMES == tuple(SIGNATURES)
    for name, signature in SIGNATURES.items():
        function = session.sandbox.namespace[name]
        assert function.__name__ == name
        assert shape(function) == signature
    out = session.run("r = [llm_query('a'), llm_query_batched(['b']), rlm_query('c')]\nprint(r)")
    assert out.trace.error is None and out.trace.output.strip() == "['ok', ['ok'], 'ok']"
    session.close()


def test_a_bound_function_does_not_hand_model_code_the_repl():
    session = repl()
    out = session.run("print([getattr(llm_query, n, None) for n in ('func', 'args', 'keywords')])")
    assert "REPLSession" not in out.trace.output + str(out.trace.error)
    session.close()


def test_every_backend_implements_what_the_kinds_send_through():
    assert {"start_llm", "start_rlm", "train_proxy", "score_proxy"} <= subcall_kinds.BACKEND_METHODS
    for backend in (RayBackend, ThreadBackend, ToolReplay):
        missing = {m for m in subcall_kinds.BACKEND_METHODS if not callable(getattr(backend, m, 0))}
        assert not missing, f"{backend.__name__} lacks {sorted(missing)}"


def test_tool_names_may_not_shadow_a_kind():
    assert set(SUBCALL_NAMES) <= tools._REPL_NAMES


def test_a_kind_must_name_backend_methods_that_exist():
    with pytest.raises(ValueError, match="unknown backend methods"):
        SubCallKind("x", print, PromptItem(), "", sends=("start_fax",), traced=("llm",))


def test_the_paper_prompt_lists_the_kinds_in_numbered_items():
    text = prompts.system_prompt(
        "x", can_recurse=True, sub_window_chars=1000, max_output_chars=500, cell_timeout_s=5
    )
    listed = text.split("initialized with:", 1)[1].split("Sub-calls run in parallel", 1)[0]
    numbers = [int(n) for n in re.findall(r"^(\d+)\. ", listed, re.M)]
    assert numbers == list(range(1, len(numbers) + 1))  # no gap, no repeat around the derived list
    for kind in KINDS:
        assert f"`{kind.name}(" in text, kind.name
    assert "`llm_count(condition, items) -> int`" in listed and "{" not in listed
