"""What the model reads: the system prompt, the context's description, the turn messages.

    prompts.py       the paper's prompts and the `small` ones tuned for a 1.5B model, the context
                     description, each turn's user message (docs/prompts.md)
    plain_prompt.py  the one message of a call made without a REPL (the depth limit)
    narrowing.py     literal values a query names, so a small root model keeps only those records

Pure text, no heavy dependency; used by one call (`core/`) and the driver's checks. Empty on
purpose: import the module you need.
"""
