"""Plans: multi-step aggregations a small root model states as JSON, run as ordinary REPL code.

    records.py   any context as record lists with named fields (the first turn shows them)
    plan.py      the plan: its JSON form, checked against the records' fields (one-line errors)
    schema.py    the JSON schema a model server enforces on the plan turn (`response_format`)
    compile.py   a checked plan -> Python source for one REPL cell (the operators, then Python)
    planner.py   the plan turn of the loop: its schema, and a reply -> code, an error or "code"

A plan never runs itself: it compiles into a cell that the REPL runs like any other, so the
trace, `result.program`, replay and the sandbox see ordinary code. No Ray here.
"""
