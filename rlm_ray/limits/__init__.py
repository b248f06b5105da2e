"""The pure rules behind admission: what a run may still spend, how fast, and where a call fits.

    budget.py      tree-wide budgets: one `Ledger` per run (tokens, cost, sub-calls)
    rate_limit.py  per-model requests/min and tokens/min as token buckets
    slots.py       `Slots`: the REPL pool's per-node admission rule

No Ray, no asyncio: `config.py` validates with them, and the actors that apply them live in
`runtime/` (`admission.py`, `pool.py`, `gateway.py`). Empty on purpose: import the module you need.
"""
