"""Repo-wide pytest setup: notebooks run in smoke mode unless MARGINLAB_SMOKE is set explicitly."""

import os

os.environ.setdefault("MARGINLAB_SMOKE", "1")
