"""A cascade's proxy on embeddings (issue 29, item 1): `approximate={"embedding_model": ...}`
end to end over Ray and HTTP to the scripted server, whose `/v1/embeddings` answers each input
with a hashed bag of its words. The embedding calls go through the gateways like model calls
(the run's models only, usage, trace, cache, deadline); when they fail, the proxy reads n-grams
alone and the cell says so in one line."""

from __future__ import annotations

import pytest
from test_cascade_ops import APPROX, CONDITION, asked_items, has_problem, oracle, reviews, settings

from rlm_ray import ConfigError, LimitExceededError, ops
from rlm_ray.testing import code, records, turns
from rlm_ray.trace.totals import trace_usage

pytestmark = pytest.mark.ray

EMBEDDER = "openai/embedder"
WITH_EMBEDDINGS = {**APPROX, "embedding_model": EMBEDDER}


def _met(kept, items) -> bool:
    truth = [r for r in items if has_problem(r)]
    found = set(kept.values) & set(truth)
    return len(found) >= 0.9 * len(truth) and len(found) >= 0.9 * len(kept.values)


def test_a_filter_cascade_trains_its_proxy_on_the_records_embeddings(ray_session, model_server):
    model_server.reply = records(oracle)
    items = reviews(2_000)
    args = settings(model_server, approximate=WITH_EMBEDDINGS)
    kept = ops.filter(CONDITION, items, recall=0.9, precision=0.9, **args)
    assert _met(kept, items) and kept.report.proxy_decided > 0 and not kept.report.exact
    embedded = model_server.embedding_requests
    assert {model for model, _ in embedded} == {"embedder"}
    assert sum(n for _, n in embedded) == len(items)  # every record once, in batches
    usage = kept.usage.by_model[EMBEDDER]
    assert usage.calls == len(embedded) > 1 and usage.input_tokens > 0
    assert kept.usage.calls == len(model_server.requests) + len(embedded)
    assert len(asked_items(model_server)) == kept.report.oracle_seen
    assert kept.warnings == []


def test_without_an_embedding_endpoint_the_proxy_reads_ngrams_and_says_so(
    ray_session, model_server
):
    model_server.reply = records(oracle)
    model_server.embeddings = False  # a chat server with no /v1/embeddings: HTTP 404
    items = reviews(2_000)
    args = settings(model_server, approximate=WITH_EMBEDDINGS, max_retries=0)
    with pytest.warns(RuntimeWarning, match="embedding by 'openai/embedder' failed"):
        kept = ops.filter(CONDITION, items, recall=0.9, precision=0.9, **args)
    assert _met(kept, items) and kept.report.proxy_decided > 0  # the n-gram proxy decided
    [line] = kept.warnings
    assert "HTTP 404" in line and "n-grams only" in line
    assert model_server.embedding_requests == []
    tried = [path for method, path, _ in model_server.http_log if path.endswith("/embeddings")]
    assert len(tried) == 1  # the first batch failed: the others were never sent
    assert EMBEDDER not in kept.usage.by_model  # nothing spent


def test_model_code_sees_the_embedding_calls_and_the_fallback_line(make_rlm, model_server):
    root = 'hits = llm_filter("the review reports a problem", context, recall=0.9)\nFINAL(1)'
    model_server.reply = records(oracle, default=turns(code(root), "FINAL(unused)"))
    model_server.embeddings = False
    result = make_rlm(approximate=WITH_EMBEDDINGS, max_retries=0).completion("q", reviews(1_200))
    cell = result.trace.iterations[0].cells[0]
    assert "[llm_filter warning] embedding by 'openai/embedder' failed" in cell.output
    assert cell.output.count("n-grams only") == 1
    failed = [s for s in cell.subcalls if s.kind == "embed"]
    assert failed and all("404" in (s.error or "") for s in failed)
    assert cell.cascades and not cell.cascades[0].reason  # the cascade ran, on n-grams


def test_the_embedding_calls_are_traced_and_counted_in_a_models_run(make_rlm, model_server):
    root = 'hits = llm_filter("the review reports a problem", context, recall=0.9)\nFINAL(1)'
    model_server.reply = records(oracle, default=turns(code(root), "FINAL(unused)"))
    result = make_rlm(approximate=WITH_EMBEDDINGS).completion("q", reviews(1_200))
    cell = result.trace.iterations[0].cells[0]
    embedded = [s for s in cell.subcalls if s.kind == "embed"]
    assert len(embedded) == len(model_server.embedding_requests) > 0
    assert all(s.error is None and s.model == EMBEDDER and s.input_tokens > 0 for s in embedded)
    assert result.usage.by_model[EMBEDDER].calls == len(embedded)
    assert trace_usage(result.trace).calls == result.usage.calls  # the trace re-adds them
    assert "warning" not in cell.output


def test_embeddings_replay_from_the_call_cache(ray_session, model_server, tmp_path):
    model_server.reply = records(oracle)
    items = reviews(1_500)
    args = settings(model_server, approximate=WITH_EMBEDDINGS, cache_dir=str(tmp_path / "c"))
    first = ops.filter(CONDITION, items, recall=0.9, precision=0.9, **args)
    embedded = len(model_server.embedding_requests)
    second = ops.filter(CONDITION, items, recall=0.9, precision=0.9, **args)
    assert len(model_server.embedding_requests) == embedded  # answered by the cache
    assert second.values == first.values and second.report == first.report
    assert second.usage.by_model[EMBEDDER].cached_calls == embedded


def test_the_run_deadline_stops_the_embedding_calls(ray_session, model_server):
    model_server.reply = records(oracle)
    model_server.embedding_delay_s = 30.0
    args = settings(model_server, approximate=WITH_EMBEDDINGS, max_time_s=8)
    with pytest.raises(LimitExceededError, match="max_time_s"):
        ops.filter(CONDITION, reviews(1_500), recall=0.9, precision=0.9, **args)
    assert model_server.embedding_requests == []  # none finished: cancelled at the deadline


def test_a_budget_counts_the_embedding_calls(ray_session, model_server):
    model_server.reply = records(oracle)
    items = reviews(1_500)
    args = settings(model_server, approximate=WITH_EMBEDDINGS)
    ops.filter(CONDITION, items, recall=0.9, precision=0.9, **args)
    chat, embedded = len(model_server.requests), len(model_server.embedding_requests)
    model_server.reset_stats()
    budget = chat + embedded - 1  # enough for every chat call, not for the embeddings too
    with pytest.raises(LimitExceededError, match="max_sub_calls"):
        ops.filter(CONDITION, items, recall=0.9, precision=0.9, max_sub_calls=budget, **args)


def test_the_gateway_refuses_an_embedding_model_outside_the_run(ray_session, model_server):
    from rlm_ray.errors import LLMError
    from rlm_ray.models import embeddings
    from rlm_ray.models.llm import LLMRequest
    from rlm_ray.runtime.gateway import RemoteGateway

    gateway = RemoteGateway.remote()
    template = LLMRequest(
        "groq/llama3-8b-8192", [], api_base=model_server.url, allowed_models=(EMBEDDER,)
    )
    request = embeddings.batch_request(template, ["a review"])
    vectors, reply = gateway.embed.options(num_returns=2).remote(request, "run-x", 4)
    with pytest.raises(LLMError, match="not one of this run's models"):
        ray_session.get(reply)
    assert model_server.http_log == []


@pytest.mark.parametrize(
    "model, message",
    [
        ("no-such-provider-xyz", "unknown model"),
        ("local", "serve no embeddings"),
        ("", "must be a model string"),
        (3, "must be a model string"),
    ],
)
def test_bad_embedding_models_are_config_errors_before_any_call(model_server, model, message):
    with pytest.raises(ConfigError, match=message):
        ops.filter(
            CONDITION,
            ["a"],
            recall=0.9,
            approximate={"embedding_model": model},
            **settings(model_server),
        )
    assert model_server.http_log == []
