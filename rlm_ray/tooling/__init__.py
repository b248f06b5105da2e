"""How tools declared with `rlm_ray.tool` run (the decorator and the gate are `rlm_ray/tools.py`).

    threads.py  the threads tool calls run on: time limits, a fixed number per process

Tools run on tool-host actors (`runtime/tool_host.py`), never in the REPL's process. No heavy
dependency. Empty on purpose: import the module you need.
"""
