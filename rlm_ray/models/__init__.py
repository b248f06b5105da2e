"""Model calls: every request a gateway sends to a model provider, and what it remembers.

    llm.py          `complete`: one chat call through litellm, or the lean path for an
                    OpenAI-compatible `api_base`; retries, usage, errors (the only litellm import)
    openai_http.py  the lean path: a direct OpenAI-compatible chat client (the only aiohttp import)
    model_names.py  "provider/name" strings accepted without importing litellm
    call_cache.py   the opt-in model-call cache: one SQLite file per cache directory

Used by the gateways (`runtime/gateway.py`, `runtime/backend.py`) and by the driver's checks
(`front/settings.py`). Empty on purpose: each module is imported by name
(`from rlm_ray.models import llm`), so that asking about a model name never loads litellm.
"""
