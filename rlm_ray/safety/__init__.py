"""Safety outside the sandbox: secrets masked, model-made values measured and printed safely.

    redact.py    secrets kept out of traces, cell output and error messages
    measure.py   bounded measures of model-made values: text length and head in bounded work
    terminal.py  model-made text made harmless for a terminal (control sequences escaped)

What may leave a sandboxed cell at all is `sandbox/boundary.py` (and the sandbox's own guards
are `sandbox/`); these keep a value safe after it left. Pure Python, no heavy dependency, used
from every room. Empty on purpose: import the module you need.
"""
