"""The floor of the chosen client: a bare `litellm.acompletion` loop, no Ray, no rlm-ray.

    python benchmarks/litellm_floor.py --calls 1024 --concurrency 256 [--latency-ms 0]

Same scripted server as `fanout.py`, in its own process; one asyncio loop in this process sends
`--calls` requests with at most `--concurrency` in flight, after one warm-up call. With `--url`
it uses a server that is already running (`fanout.py --floor` runs it that way, between its own
runs, so both see the same machine load).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rlm_ray.testing import ScriptedServer  # noqa: E402


def _serve(conn, latency_s: float) -> None:
    with ScriptedServer(lambda request: "1", latency_s=latency_s) as server:
        conn.send(server.url)
        conn.recv()  # until told to stop


async def _loop(url: str, calls: int, concurrency: int, model: str) -> float:
    import litellm

    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with limit:
            await litellm.acompletion(
                model=model,
                messages=[{"role": "user", "content": f"LEAF {i}"}],
                api_base=url,
                api_key="sk-floor",
                num_retries=0,
                max_retries=0,
            )

    await one(-1)
    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--url", help="a running server to call (--latency-ms is then ignored)")
    parser.add_argument(
        "--model",
        default="openai/floor",
        help="model name sent to the local server (a name in litellm's price map, such as "
        "openai/gpt-4o-mini, skips litellm's slow paths for unknown models)",
    )
    args = parser.parse_args()
    if args.url:
        wall = asyncio.run(_loop(args.url, args.calls, args.concurrency, args.model))
    else:
        conn, child = multiprocessing.Pipe()
        server = multiprocessing.get_context("fork").Process(
            target=_serve, args=(child, args.latency_ms / 1000), daemon=True
        )
        server.start()
        try:
            wall = asyncio.run(_loop(conn.recv(), args.calls, args.concurrency, args.model))
        finally:
            conn.send("stop")
            server.join(5)
    print(
        f"bare litellm: {args.calls} calls in {wall:.3f} s = {1000 * wall / args.calls:.2f} ms/call"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
