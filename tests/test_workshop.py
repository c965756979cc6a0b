"""notebooks/07_workshop.ipynb: structure (parts, exercises, folded answers, smoke switch), a smoke run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NB = Path(__file__).resolve().parents[1] / "notebooks" / "07_workshop.ipynb"


def _cells():
    return json.loads(NB.read_text())["cells"]


def test_every_part_has_exercises_with_a_folded_answer():
    cells = _cells()
    text = ["".join(c["source"]) for c in cells]
    md = [c["cell_type"] == "markdown" for c in cells]
    parts = [i for i, t in enumerate(text) if md[i] and t.startswith("## Part ")]
    assert len(parts) == 5
    for a, b in zip(parts, parts[1:] + [len(cells)]):
        section = text[a:b]
        ex = [i for i, t in enumerate(section) if t.startswith("### Exercises")]
        assert ex, text[a].splitlines()[0]
        answer = section[ex[0] + 1]
        assert answer.startswith("<details><summary>") and answer.rstrip().endswith("</details>")
    assert any("A/B compare" in t for t in text)  # where marginlab.widgets.compare will go
    assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code")  # committed without outputs


def test_smoke_switch_is_a_parameters_cell():
    params = [c for c in _cells() if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and "MARGINLAB_SMOKE" in "".join(params[0]["source"])


@pytest.mark.notebook
def test_notebook_runs_in_smoke_mode(tmp_path):
    env = {**os.environ, "MARGINLAB_SMOKE": "1", "MARGINLAB_CACHE": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbmake", str(NB)],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
