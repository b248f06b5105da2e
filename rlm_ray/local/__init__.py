"""`model="local"`: a real model offline, served by the embedded llama.cpp server on 127.0.0.1.

    local_model.py   find the model's PyPI parts, assemble and verify it, serve it (xllamacpp)
    prompt_cache.py  the root's fixed prompt prefix, read once per machine, not once a run

The Ray side (one server per node and model for a run) is `runtime/model_servers.py`; the guide
is docs/local_model.md. Empty on purpose: import the module you need; only `local_model` imports
xllamacpp, and only when a server starts.
"""
