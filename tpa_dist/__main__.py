"""python -m tpa_dist: the tpa-dist command line."""

from .cli import main

main()
