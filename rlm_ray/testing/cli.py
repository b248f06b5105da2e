"""``python -m rlm_ray.testing serve``: a scripted model server for benchmarks and demos."""

from __future__ import annotations

import argparse
import threading

from rlm_ray.testing.script import Request
from rlm_ray.testing.server import ScriptedServer

# --------------------------------------------------------------------------- demo CLI


def demo_reply(request: Request) -> str:
    """The CLI's default model: ``FINAL(ok)`` to a call with a system prompt (an RLM root or
    child turn), ``ok`` to a plain call (a leaf `llm_query`), so any RLM run ends in one turn."""
    return "FINAL(ok)" if request.system else "ok"


def echo_reply(request: Request) -> str:
    """The CLI's ``--echo`` model: answers with the last user message."""
    return request.last_user


def main(argv: list[str] | None = None) -> None:
    """``python -m rlm_ray.testing serve --port N --latency-ms M [--echo]``."""
    parser = argparse.ArgumentParser(prog="python -m rlm_ray.testing")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a scripted model on 127.0.0.1 until Ctrl-C")
    serve.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    serve.add_argument("--latency-ms", type=float, default=0.0, help="sleep before each answer")
    serve.add_argument("--echo", action="store_true", help="answer with the last user message")
    serve.add_argument("--fault-rate", type=float, default=0.0, help="share of injected faults")
    serve.add_argument("--seed", type=int, default=0, help="seed of the fault injection")
    args = parser.parse_args(argv)
    reply = echo_reply if args.echo else demo_reply
    server = ScriptedServer(
        reply,
        latency_s=args.latency_ms / 1000,
        port=args.port,
        fault_rate=args.fault_rate,
        seed=args.seed,
    )
    with server:
        print(f"listening {server.url}  (model: openai/<any name>, any api_key)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print(f"stopped after {server.request_count} requests", flush=True)
