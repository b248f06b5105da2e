"""Offline test doubles for rlm-ray pipelines: a scripted model, over HTTP or in-process.

Tests of an RLM pipeline need a model that answers deterministically. Here the model is a *reply
function*: ``Callable[[Request], str | Reply]``, a pure function of the request. Pure matters:
under Ray every worker process unpickles its own copy of whatever plays the model, so a script that
pops replies from a list would restart in each process; a function of the prompt cannot drift.

Two ways to play it:

- `ScriptedServer`: an OpenAI-compatible chat-completions server on 127.0.0.1, for end-to-end tests
  through litellm's real HTTP path (``model="openai/<anything>", api_base=server.url``). It also
  injects latency and faults (HTTP errors, malformed JSON, dropped connections, timeouts).
- `FakeLLM`: the same reply functions called in-process, returning `rlm_ray.types.LLMReply`, for
  unit tests that need no HTTP at all.

Helpers write stateless scripts: `by_marker` (answer by a marker in the prompt), `turns` (answer by
root turn), `code` (a ```` ```repl ```` block), `records` (answer the batches of `llm_map`,
`llm_filter`, `llm_classify` and `rlm_ray.ops` item by item). Example::

    from rlm_ray.testing import ScriptedServer, by_marker, code, turns

    root = turns(code("print(len(context))"), "FINAL(done)")
    with ScriptedServer(by_marker({"SUMMARIZE": "a summary"}, default=root)) as server:
        rlm = RLM(model="openai/scripted", api_base=server.url, api_key="sk-test")
        ...

A demo server for benchmarks: ``python -m rlm_ray.testing serve --port 8000 --latency-ms 200``.

    script.py   the reply-function language: `Request`, `Reply`, `by_marker`, `turns`, `code`, `records`
    server.py   `ScriptedServer`: HTTP, latency, fault injection, rate limit
    fakes.py    `FakeLLM`: the same reply functions in-process
    cli.py      ``python -m rlm_ray.testing serve`` (`__main__.py` runs it)
    local_corpus.py  `local_corpus`: a corpus served from this process, no Ray (pyarrow; imported
                by name)

Standard library only (plus `rlm_ray.types` and `rlm_ray.errors` for `FakeLLM`): no litellm, no
Ray, so importing it is cheap and it runs in any process.
"""

from rlm_ray.testing.cli import demo_reply, echo_reply, main
from rlm_ray.testing.fakes import FakeLLM
from rlm_ray.testing.script import (
    Answer,
    Reply,
    ReplyFn,
    Request,
    apply_stop,
    as_reply,
    by_marker,
    code,
    estimate_tokens,
    records,
    turns,
)
from rlm_ray.testing.server import FAULTS, ScriptedServer

__all__ = [
    "FAULTS",
    "Answer",
    "FakeLLM",
    "Reply",
    "ReplyFn",
    "Request",
    "ScriptedServer",
    "apply_stop",
    "as_reply",
    "by_marker",
    "code",
    "demo_reply",
    "echo_reply",
    "estimate_tokens",
    "main",
    "records",
    "turns",
]
