from rlm_ray.testing.cli import main

main()
