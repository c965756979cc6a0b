"""Repository-wide pytest setup: the study notebooks (03-06) run in smoke mode under pytest (nbmake kernels
inherit this environment), re-running each study's quick version instead of opening the shipped results;
``MARGINLAB_SMOKE=0 pytest notebooks`` runs them on the shipped results instead."""

import os

os.environ.setdefault("MARGINLAB_SMOKE", "1")
