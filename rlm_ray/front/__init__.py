"""What the facades (`RLM`, `Session`, `rlm_ray.ops`) share before any Ray work.

    settings.py  `RunSettings`: models, limits, tools, callbacks, checked (`ConfigError`)
    inputs.py    the query and the context a user hands in, checked
    blocking.py  `run_blocking`: an async run's result for blocking code, notebooks included

No Ray; `settings` asks litellm only about a model string it alone can judge. The run itself is
`runtime/run.py`'s `Launcher`. Empty on purpose: import the module you need.
"""
