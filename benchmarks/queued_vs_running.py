"""What rlm-ray's own model server says about calls it queues: llama.cpp's `timings` and `/slots`.

    python benchmarks/queued_vs_running.py [--model local] [--slots 1] [--calls 3]

Starts the local model's server (extra `[local]`) with `--slots` slots, sends `--calls` chat
requests at once, asks `GET /slots` (`openai_http.busy_slots`, what the gateways ask while the
driver polls progress) half a second later, and prints for each request its wall time, the time
the server says it worked on it (`timings`: prompt + answer, what the trace keeps as
`server_s`) and the difference, its wait in the server's queue. No Ray.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import time
import urllib.request

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rlm_ray.local.local_model import LOCAL_MODELS, LocalServer  # noqa: E402
from rlm_ray.models import openai_http  # noqa: E402


def ask(api_base: str, name: str, out: list[tuple[float, dict]]) -> None:
    body = {"model": name, "messages": [{"role": "user", "content": "Say hi in 3 words."}]}
    body["max_tokens"] = 8
    request = urllib.request.Request(
        f"{api_base}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    started = time.time()
    with urllib.request.urlopen(request, timeout=600) as response:
        document = json.loads(response.read())
    out.append((time.time() - started, document["timings"]))


async def busy(api_base: str) -> int | None:
    try:
        return await openai_http.busy_slots(api_base)
    finally:
        await openai_http.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="local", choices=sorted(LOCAL_MODELS))
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()
    spec = LOCAL_MODELS[args.model]
    started = time.time()
    with LocalServer(spec, slots=args.slots) as server:
        print(f"server up in {time.time() - started:.1f} s, {args.slots} slot(s)")
        done: list[tuple[float, dict]] = []
        threads = [
            threading.Thread(target=ask, args=(server.api_base, spec.served_name, done))
            for _ in range(args.calls)
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        print(f"/slots, {args.calls} sent: {asyncio.run(busy(server.api_base))} busy")
        for thread in threads:
            thread.join()
    for wall, timings in sorted(done, key=lambda d: d[0]):
        server_s = (timings["prompt_ms"] + timings["predicted_ms"]) / 1000
        print(f"wall {wall:.2f} s, server {server_s:.2f} s, queued {wall - server_s:.2f} s")


if __name__ == "__main__":
    main()
