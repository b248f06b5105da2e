"""Prompts whose corpus slices add up past the model's window are refused before any text is
made (issue 25, item 5): `llm_query([context] * 2000)` over a 200 KB corpus made the shared
gateway render and join 400 million characters (1.9 GiB) outside the REPL's memory cap.

Views know their lengths from their offsets, so the REPL refuses such a prompt in the cell and
the gateway, should one reach it, refuses it before reading a chunk.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

import rlm_ray
from rlm_ray.core.repl import REPLSession, REPLSettings
from rlm_ray.errors import LLMError
from rlm_ray.models.llm import LLMRequest
from rlm_ray.testing import by_marker, code, turns
from rlm_ray.testing.local_corpus import local_corpus
from rlm_ray.types import LLMReply

DOCS = [f"record {i}: " + "lorem ipsum " * 80 for i in range(20)]  # ~20,000 characters
WINDOW_TOKENS = 1024  # the smallest window a config takes: 8,192 characters


class Recording:
    """A backend that records what the REPL hands over and answers at once."""

    def __init__(self) -> None:
        self.prompts: list = []

    def start_llm(self, prompt, model):
        self.prompts.append(prompt)
        return LLMReply(text="reply", model="fake")

    def start_rlm(self, query, context, model):
        return LLMReply(text="child", model="fake")

    def fetch(self, handles):
        return [(True, h) for h in handles]

    def cancel(self, handles):
        pass


@pytest.fixture
def view():
    return local_corpus(pa.table({"text": DOCS}), chunk_size=5000)


@pytest.mark.parametrize(
    "cell",
    [
        "llm_query([context] * 2000)",
        "llm_query(['Summarise:'] + context.chunks() * 3)",
        "rlm_query('Summarise', context)",  # at the depth limit: one plain call over the view
        "llm_query_batched([[context, context]] * 5)",
    ],
)
def test_the_repl_refuses_a_prompt_past_the_window_before_reading_it(view, cell):
    backend = Recording()
    settings = REPLSettings(can_recurse=False, sub_context_window_tokens=WINDOW_TOKENS)
    repl = REPLSession(view, backend, "fake", settings)
    out = repl.run(cell)
    assert "more than the model's window of 1,024 tokens takes" in (out.trace.error or "")
    assert backend.prompts == []  # nothing left the cell
    assert view._source.fetched == []  # and no chunk was read to find out


def test_a_prompt_within_the_window_still_goes(view):
    backend = Recording()
    settings = REPLSettings(can_recurse=False, sub_context_window_tokens=WINDOW_TOKENS)
    repl = REPLSession(view, backend, "fake", settings)
    out = repl.run("print(llm_query(context[:8000]))")
    assert out.trace.error is None and out.trace.output == "reply\n"


def test_the_gateway_check_reads_no_slice(view):
    from rlm_ray.runtime.gateway import check_request

    request = LLMRequest(
        "openai/scripted",
        [{"role": "user", "content": [view] * 2000}],
        allowed_models=("openai/scripted",),
        max_prompt_chars=8192,
    )
    with pytest.raises(LLMError, match="its prompt is 38,896,000 characters, more than"):
        check_request(request)
    assert view._source.fetched == []


@pytest.fixture(scope="module")
def loaded(ray_session):
    return rlm_ray.load(pa.table({"text": DOCS}), chunk_size=5000)


@pytest.mark.ray
def test_the_gateway_refuses_before_rendering(ray_session, model_server, loaded):
    from rlm_ray.runtime.gateway import RemoteGateway

    gateway = RemoteGateway.remote()
    request = LLMRequest(
        "openai/scripted",
        [{"role": "user", "content": [loaded] * 2000}],
        api_base=model_server.url,
        allowed_models=("openai/scripted",),
        max_prompt_chars=8192,
    )
    with pytest.raises(LLMError, match="prompt is .* characters, more than its window allows"):
        ray_session.get(gateway.complete.remote(request, "run-size", 4))
    assert model_server.http_log == []


@pytest.mark.ray
def test_the_model_is_told_in_its_cell(make_rlm, model_server, loaded):
    model_server.reply = by_marker(
        {"SUB": "sub answer"},
        default=turns(
            code("r = llm_query(['SUB'] + [context] * 2000)\nprint(r)"),
            lambda r: (
                "FINAL(told)" if "more than the model's window" in r.last_user else "FINAL(no)"
            ),
        ),
    )
    result = make_rlm().completion("q", loaded)  # 2000 x 20,000 characters, 32,768 tokens
    assert result.answer == "told"
    assert not [r for r in model_server.requests if r.first_user.startswith("SUB")]
