"""python -m tpa_dist: the tpa-dist command line."""

from tpa_dist.cli import entry

entry()
