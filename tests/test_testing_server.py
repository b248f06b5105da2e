"""Tests of `rlm_ray.testing`: the scripted server through litellm over real HTTP, and FakeLLM.

The litellm tests double as a record of how litellm surfaces each fault (which exception class),
which the runtime's gateway relies on.
"""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm: no network

import asyncio
import http.client
import json
import math
import pickle
import signal
import subprocess
import sys
import threading
import time

import litellm
import pytest

from rlm_ray.errors import LLMError
from rlm_ray.testing import (
    FakeLLM,
    Reply,
    Request,
    ScriptedServer,
    by_marker,
    code,
    turns,
)
from rlm_ray.types import LLMReply

litellm.suppress_debug_info = True

HTML_502 = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


def _raise(request: Request) -> str:
    raise RuntimeError("kaboom from the script")


# One server for the module; the first user message picks the behaviour, so tests stay apart.
SCRIPT = by_marker(
    {
        "PLAIN": "hello there",
        "TURNS": turns("first", code("print(1)"), "FINAL(3)"),
        "STOP": "keep this STOP drop this",
        "RATE": Reply("slow down", status=429, headers={"Retry-After": "1"}),
        "HTML": Reply(status=502, raw_body=HTML_502, headers={"Content-Type": "text/html"}),
        "MALFORMED": Reply(raw_body=b'{"choices": [{"mess'),
        "DROP": Reply(drop_connection=True),
        "SLOW": Reply("late", delay_s=2.0),
        "RAISE": _raise,
        "ECHO": lambda request: f"echo:{request.first_user}",
    }
)


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(SCRIPT) as srv:
        yield srv


def complete(server: ScriptedServer, *messages: dict, **kwargs):
    """One litellm call to the server; retries off, so one call is one request."""
    kwargs.setdefault("num_retries", 0)
    return litellm.completion(
        model="openai/scripted",
        api_base=server.url,
        api_key="sk-test",
        messages=list(messages),
        **kwargs,
    )


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def post(url: str, body: object, timeout: float = 5.0) -> tuple[int, bytes]:
    """A raw POST to the chat endpoint, for what litellm would hide (status, body)."""
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body).encode())
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --------------------------------------------------------------------------- through litellm


def test_plain_reply_is_an_openai_chat_completion(server):
    response = complete(server, {"role": "system", "content": "sys"}, user("PLAIN"))

    assert response.choices[0].message.content == "hello there"
    assert response.choices[0].finish_reason == "stop"
    assert response.model.endswith("scripted")
    recorded = server.requests[-1]
    assert recorded.system == "sys" and recorded.first_user == "PLAIN"
    assert recorded.model == "scripted"


def test_usage_is_estimated_as_a_quarter_of_the_characters(server):
    response = complete(server, user("PLAIN"))

    assert response.usage.prompt_tokens == math.ceil(len("PLAIN") / 4)
    assert response.usage.completion_tokens == math.ceil(len("hello there") / 4)
    assert response.usage.total_tokens == 2 + 3


def test_turns_answers_by_the_number_of_assistant_messages(server):
    history = [user("TURNS")]
    answers = []
    for _ in range(4):  # one more turn than the script: the last reply repeats
        text = complete(server, *history).choices[0].message.content
        answers.append(text)
        history += [{"role": "assistant", "content": text}, user("output")]

    assert answers == ["first", "```repl\nprint(1)\n```", "FINAL(3)", "FINAL(3)"]


def test_by_marker_prefers_the_first_user_message(server):
    # "RAISE" occurs in the system prompt, but the first user message names ECHO.
    response = complete(server, {"role": "system", "content": "RAISE"}, user("ECHO me"))

    assert response.choices[0].message.content == "echo:ECHO me"


def test_stop_sequences_cut_the_reply(server):
    response = complete(server, user("STOP"), stop=["zzz", " STOP"])

    assert response.choices[0].message.content == "keep this"


def test_429_surfaces_as_rate_limit_error(server):
    server.reset_stats()
    with pytest.raises(litellm.RateLimitError):
        complete(server, user("RATE"), max_retries=0)

    assert server.request_count == 1


def test_502_with_an_html_body_surfaces_as_bad_gateway(server):
    with pytest.raises(litellm.BadGatewayError):
        complete(server, user("HTML"))


def test_malformed_json_surfaces_as_an_api_error(server):
    # litellm reports an unparsable body as a 500 (InternalServerError, an APIError).
    with pytest.raises(litellm.InternalServerError, match="Expecting value|Unterminated"):
        complete(server, user("MALFORMED"))


def test_dropped_connection_surfaces_as_a_connection_error(server):
    with pytest.raises(litellm.InternalServerError, match="Connection error"):
        complete(server, user("DROP"))


def test_a_delay_past_the_client_timeout_surfaces_as_timeout(server):
    with pytest.raises(litellm.Timeout):
        complete(server, user("SLOW"), timeout=0.3)


def test_an_exception_in_the_script_is_a_500_with_its_traceback(server):
    with pytest.raises(litellm.InternalServerError, match="kaboom from the script"):
        complete(server, user("RAISE"))

    assert "RuntimeError: kaboom from the script" in server.errors[-1]


def test_by_marker_without_a_match_or_default_is_a_500_naming_the_markers(server):
    status, body = post(server.url, {"model": "m", "messages": [user("nothing here")]})

    assert status == 500
    assert "no marker of ['PLAIN'" in json.loads(body)["error"]["message"]


def test_concurrent_calls_are_all_in_flight_together():
    async def fan_out(srv: ScriptedServer, n: int) -> list:
        calls = [
            litellm.acompletion(
                model="openai/scripted",
                api_base=srv.url,
                api_key="sk-test",
                messages=[user(f"ECHO {i}")],
                num_retries=0,
            )
            for i in range(n)
        ]
        return await asyncio.gather(*calls)

    with ScriptedServer(SCRIPT, latency_s=0.2) as srv:
        asyncio.run(fan_out(srv, 1))  # warm litellm's client code paths up
        srv.reset_stats()
        started = time.perf_counter()
        responses = asyncio.run(fan_out(srv, 32))
        wall = time.perf_counter() - started

    assert [r.choices[0].message.content for r in responses] == [
        f"echo:ECHO {i}" for i in range(32)
    ]
    assert srv.peak_concurrency == 32
    assert srv.request_count == 32 and srv.in_flight == 0
    assert wall < 1.5


def test_injected_faults_surface_through_litellm():
    with ScriptedServer(SCRIPT, fault_rate=1.0, faults=("429",)) as srv:
        with pytest.raises(litellm.RateLimitError):
            complete(srv, user("PLAIN"))
        assert srv.faults_injected == 1


# --------------------------------------------------------------------------- raw HTTP


def test_fault_injection_is_seeded_and_roughly_honours_the_rate():
    def statuses(seed: int) -> list[str]:
        with ScriptedServer(lambda r: "ok", fault_rate=0.3, seed=seed, timeout_fault_s=0.01) as srv:
            seen = []
            for _ in range(200):
                try:
                    status, body = post(srv.url, {"model": "m", "messages": [user("x")]})
                    seen.append(str(status) if status != 200 or _is_json(body) else "malformed")
                except (http.client.HTTPException, OSError):
                    seen.append("dropped")  # the "drop" and "timeout" faults
            assert srv.request_count == 200
            assert seen.count("200") == 200 - srv.faults_injected
            return seen

    first = statuses(seed=7)
    assert 40 <= 200 - first.count("200") <= 80  # 30 % of 200, with a wide margin
    assert {"429", "500", "502", "dropped", "malformed"} <= set(first)
    assert statuses(seed=7) == first
    assert statuses(seed=8) != first


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def test_stream_requests_are_rejected_with_a_clear_message(server):
    status, body = post(server.url, {"model": "m", "messages": [user("PLAIN")], "stream": True})

    assert status == 400
    assert "stream=true" in json.loads(body)["error"]["message"]


def test_invalid_json_is_a_400(server):
    status, body = post(server.url, "not an object")

    assert status == 400


def test_models_and_health_endpoints(server):
    host, port = server.url.removeprefix("http://").split("/")[0].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/v1/models")
        models = json.loads(conn.getresponse().read())
        conn.request("GET", "/health")  # same keep-alive connection
        health = conn.getresponse()
        assert health.status == 200 and json.loads(health.read()) == {"status": "ok"}
    finally:
        conn.close()

    assert models["object"] == "list" and models["data"][0]["id"] == "scripted"


def test_stop_is_prompt_while_a_request_sleeps():
    srv = ScriptedServer(lambda r: Reply("late", delay_s=30)).start()
    url = srv.url
    body = {"model": "m", "messages": [user("x")]}
    asleep = threading.Thread(target=lambda: _ignore_errors(post, url, body), daemon=True)
    asleep.start()
    deadline = time.monotonic() + 5
    while srv.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)

    assert srv.in_flight == 1
    started = time.perf_counter()
    srv.stop()

    assert time.perf_counter() - started < 1.0
    asleep.join(timeout=2)
    assert not asleep.is_alive()


def _ignore_errors(fn, *args):
    try:
        fn(*args)
    except (http.client.HTTPException, OSError):
        pass


# --------------------------------------------------------------------------- pure helpers


def test_request_helpers():
    request = Request.from_body(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "rules"},
                {"role": "user", "content": [{"type": "text", "text": "query"}]},
                {"role": "assistant", "content": None},
                {"role": "user", "content": "output 1"},
                {"role": "assistant", "content": "more"},
                {"role": "user", "content": "output 2"},
            ],
        }
    )

    assert request.system == "rules"
    assert request.first_user == "query" and request.last_user == "output 2"
    assert request.turn == 2
    assert request.text == "rules\nquery\n\noutput 1\nmore\noutput 2"
    assert request.has("output 1") and not request.has("absent")


def test_code_wraps_dedented_source_in_a_repl_block():
    assert (
        code("""
        x = 1
        print(x)
    """)
        == "```repl\nx = 1\nprint(x)\n```"
    )


# --------------------------------------------------------------------------- FakeLLM


def test_fake_llm_answers_with_an_llm_reply_and_counts():
    fake = FakeLLM(SCRIPT)

    reply = fake([user("PLAIN")], model="m")
    fake([user("TURNS"), {"role": "assistant", "content": "first"}, user("out")])

    assert isinstance(reply, LLMReply)
    assert (reply.text, reply.model, reply.input_tokens, reply.output_tokens) == (
        "hello there",
        "m",
        2,
        3,
    )
    assert fake.calls == 2 and fake.requests[1].turn == 1
    assert fake([user("STOP")], stop="STOP").text == "keep this "


def test_fake_llm_turns_faults_into_llm_errors_and_lets_script_errors_through():
    fake = FakeLLM(SCRIPT)

    with pytest.raises(LLMError) as caught:
        fake([user("RATE")])
    assert caught.value.status_code == 429
    with pytest.raises(RuntimeError, match="kaboom"):
        fake([user("RAISE")])


def test_fake_llm_survives_pickling_like_a_ray_worker_copy():
    copy = pickle.loads(pickle.dumps(FakeLLM(turns("a", "b"))))

    assert copy([user("q")]).text == "a"
    assert copy.calls == 1


# --------------------------------------------------------------------------- CLI


def test_cli_serves_until_interrupted():
    process = subprocess.Popen(
        [sys.executable, "-m", "rlm_ray.testing", "serve", "--port", "0", "--latency-ms", "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("listening http://127.0.0.1:")
        url = line.split()[1]
        status, body = post(url, {"model": "m", "messages": [user("leaf prompt")]})
        assert status == 200
        assert json.loads(body)["choices"][0]["message"]["content"] == "ok"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    assert process.returncode == 0
