"""`python -m rlm_ray.cli` is the `rlm-ray` command too (as is `python -m rlm_ray`)."""

import os

from rlm_ray.cli import main

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
raise SystemExit(main())
