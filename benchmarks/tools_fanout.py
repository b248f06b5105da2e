"""Tool fan-out: N calls of a tool that sleeps 1 s, made in one list comprehension.

    python benchmarks/tools_fanout.py [--calls 8] [--sleep-s 1.0] [--repeat 2]

Prints, per run, the wall time of the fan-out (first call made to last call done, from the
trace) and how many tool-host processes served it. The first run includes starting the tool
host; the calls of a comprehension run side by side on the host's threads.
"""

from __future__ import annotations

import argparse
import time

import rlm_ray
from rlm_ray.testing import ScriptedServer, code, turns


@rlm_ray.tool(effects="read")
def nap(i: int, seconds: float) -> int:
    """Sleep, then return i."""
    time.sleep(seconds)
    return i


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--sleep-s", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    src = f"rs = [nap(i, {args.sleep_s}) for i in range({args.calls})]\nprint(sum(rs))"
    with ScriptedServer(turns(code(src), "FINAL(done)")) as server:
        rlm = rlm_ray.RLM("openai/scripted", api_base=server.url, api_key="sk-bench", tools=[nap])
        for run in range(args.repeat):
            result = rlm.completion("q", "ctx")
            subs = result.trace.iterations[0].cells[0].subcalls
            start = min(s.started_s for s in subs)
            end = max(s.started_s + s.duration_s for s in subs)
            pids = len({s.pid for s in subs})
            print(
                f"run {run}: {len(subs)} calls of {args.sleep_s:g} s in {end - start:.2f} s "
                f"on {pids} host process(es); usage.tool_calls={result.usage.tool_calls}"
            )


if __name__ == "__main__":
    main()
