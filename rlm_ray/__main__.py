"""`python -m rlm_ray` is the `rlm-ray` command."""

from rlm_ray.cli import main

raise SystemExit(main())
