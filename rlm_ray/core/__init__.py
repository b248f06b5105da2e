"""One RLM call, free of Ray: testable in-process with `testing/thread_backend.py`.

    call.py          `CallSpec` (`.root()` / `.child()`), `run_call`: one call start to end
    loop.py          the turn loop: ask the model, run its code blocks, feed back the output
    parsing.py       a model reply's code blocks and final answer (pure functions)
    repl.py          the call's REPL: `Sandbox` with `context` and the model-facing functions
    futures.py       `SubCallFuture`: a sub-call's text, usable before it came back; `resolve`
    subcalls.py      the `Backend` protocol, `SubCalls`: sub-calls started and settled in batches
    session_repl.py  a session's REPL between questions, rebuilt from its cells when lost
    program_mode.py  a recorded program's cells run instead of the turn loop (a replay)
    answer_source.py where a typed answer came from: the code whose value it is
    answer_rule.py   how a program takes its answer (`AnswerRule`), decided from the run

A worker (`runtime/worker.py`) runs `call.run_call` with a `RayBackend`; nothing here imports
Ray or litellm (the REPL's only heavy dependency, RestrictedPython, is behind `sandbox/`).
Empty on purpose: import the module you need, so that reading a reply does not load the sandbox.
"""
