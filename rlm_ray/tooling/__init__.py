"""How tools declared with `rlm_ray.tool` travel, are gated, run and shown (the decorator, the
values that cross processes and the checks before any Ray work are `rlm_ray/tools.py`).

    pickling.py  `freeze` / `thaw`: the functions pickled once by the driver, unpickled once
                 per process (Ray's cloudpickle, imported only when an `RLM` gets tools)
    gate.py      `authorize`, the one gate before a tool runs; `run_tool`; `replay_settings`
    threads.py   the threads tool calls run on: time limits, a fixed number per process
    shown.py     what the prompt and the trace show of tools

Tools run on tool-host actors (`runtime/tool_host.py`), never in the REPL's process. No heavy
dependency at import. Empty on purpose: import the module you need.
"""
