"""Values a model made, and secrets, handled safely outside the sandbox.

    redact.py    secrets kept out of traces, cell output and error messages
    measure.py   bounded measures of model-made values: text length and head in bounded work
    terminal.py  model-made text made harmless for a terminal (control sequences escaped)

What may leave a sandboxed cell at all is `sandbox/boundary.py`; these guard what happens to a
value after it left. Pure Python, no heavy dependency, used from every room. Empty on purpose:
import the module you need.
"""
