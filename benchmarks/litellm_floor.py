"""The floor of the model-call client: a bare loop of one client, no Ray, no rlm-ray's runtime.

    python benchmarks/litellm_floor.py --calls 1024 --concurrency 256 [--latency-ms 0]
    python benchmarks/litellm_floor.py --client all --latency-ms 250    # every client, a table

Same scripted server as `fanout.py`, in its own process; one asyncio loop in this process sends
`--calls` requests with at most `--concurrency` in flight, after one warm-up call. With `--url`
it uses a server that is already running (`fanout.py --floor` runs it that way, between its own
runs, so both see the same machine load).

Clients (`--client`):
  litellm      `litellm.acompletion`, as rlm-ray called it before the lean path (the default)
  llm          `rlm_ray.models.llm.acomplete`: what a gateway calls (the lean path for
               openai/ models with an api_base; retries, errors and cost included)
  llm-litellm  the same with the lean path off (RLM_RAY_LEAN_HTTP=0): the full litellm path
  httpx        a bare shared `httpx.AsyncClient` POST + json parse (no retries, no cost)
  aiohttp      a bare shared `aiohttp.ClientSession` POST + json parse (no retries, no cost)
Besides wall time it prints this process's CPU time per call (user + system, `time.process_time`):
the client's own cost, which bounds a fan-out on a small machine.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rlm_ray.testing import ScriptedServer  # noqa: E402

CLIENTS = ("litellm", "llm", "llm-litellm", "httpx", "aiohttp")


def _serve(conn, latency_s: float) -> None:
    with ScriptedServer(lambda request: "1", latency_s=latency_s) as server:
        conn.send(server.url)
        conn.recv()  # until told to stop


def _messages(i: int) -> list[dict]:
    return [{"role": "user", "content": f"LEAF {i}"}]


async def _sender(client: str, url: str, model: str, concurrency: int):
    """An async function sending call number i, and a closer."""
    if client == "litellm":
        import litellm

        async def one(i: int) -> None:
            await litellm.acompletion(
                model=model,
                messages=_messages(i),
                api_base=url,
                api_key="sk-floor",
                num_retries=0,
                max_retries=0,
            )

        return one, None
    if client in ("llm", "llm-litellm"):
        from rlm_ray.models import llm

        if client == "llm-litellm":
            os.environ["RLM_RAY_LEAN_HTTP"] = "0"

        async def one(i: int) -> None:
            request = llm.LLMRequest(model, _messages(i), api_base=url, api_key="sk-floor")
            await llm.acomplete(request)

        return one, None
    name = model.split("/", 1)[1]
    headers = {"Authorization": "Bearer sk-floor"}
    if client == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        hx = httpx.AsyncClient(limits=limits, timeout=120.0, headers=headers)

        async def one(i: int) -> None:
            body = {"model": name, "messages": _messages(i)}
            response = await hx.post(url + "/chat/completions", json=body)
            response.json()["choices"][0]["message"]["content"]

        return one, hx.aclose
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency), headers=headers
    )

    async def one(i: int) -> None:
        body = {"model": name, "messages": _messages(i)}
        async with session.post(url + "/chat/completions", json=body) as response:
            (await response.json())["choices"][0]["message"]["content"]

    return one, session.close


async def _loop(
    url: str, calls: int, concurrency: int, model: str, client: str = "litellm"
) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for `calls` calls after one warm-up."""
    send, close = await _sender(client, url, model, concurrency)
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with limit:
            await send(i)

    await one(-1)
    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    if close is not None:
        await close()
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--url", help="a running server to call (--latency-ms is then ignored)")
    parser.add_argument("--client", choices=[*CLIENTS, "all"], default="litellm")
    parser.add_argument(
        "--model",
        default="openai/floor",
        help="model name sent to the local server (a name in litellm's price map, such as "
        "openai/gpt-4o-mini, skips litellm's slow paths for unknown models)",
    )
    args = parser.parse_args()
    clients = CLIENTS if args.client == "all" else (args.client,)
    conn = server = None
    url = args.url
    if not url:
        conn, child = multiprocessing.Pipe()
        server = multiprocessing.get_context("fork").Process(
            target=_serve, args=(child, args.latency_ms / 1000), daemon=True
        )
        server.start()
        url = conn.recv()
    try:
        for client in clients:
            # each client in a fresh process: no client's imports or pools help another's
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(1) as pool:
                wall, cpu = pool.apply(
                    _run, (url, args.calls, args.concurrency, args.model, client)
                )
            name = "bare litellm" if client == "litellm" else client
            print(
                f"{name}: {args.calls} calls in {wall:.3f} s = {1000 * wall / args.calls:.2f} "
                f"ms/call; CPU {1000 * cpu / args.calls:.2f} ms/call"
            )
    finally:
        if conn is not None and server is not None:
            conn.send("stop")
            server.join(5)
    return 0


def _run(url: str, calls: int, concurrency: int, model: str, client: str) -> tuple[float, float]:
    return asyncio.run(_loop(url, calls, concurrency, model, client))


if __name__ == "__main__":
    raise SystemExit(main())
