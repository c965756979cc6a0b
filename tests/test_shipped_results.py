"""The shipped evidence (data/results/<study>/): every verdict recorded when it was shipped is re-derived from
the shipped tables, by the API and by ``marginlab findings PATH``; provenance is complete; the total small."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marginlab.cli import main
from marginlab.experiments.findings import load_results, report_for

RESULTS = Path(__file__).resolve().parents[1] / "data" / "results"
SHIPPED = sorted(p for p in RESULTS.iterdir() if (p / "verdicts.json").exists()) if RESULTS.exists() else []
PROVENANCE = {"study", "spec_name", "commit", "date", "machine", "wall_seconds_this_call",
              "unit_seconds_total", "units", "size", "overrides_of_full_spec"}


def test_something_is_shipped():
    assert {p.name for p in SHIPPED} >= {"min-vs-average-margin", "average-margin-regularizer"}


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_shipped_verdicts_are_rederived(folder):
    shipped = json.loads((folder / "verdicts.json").read_text())
    again = report_for(load_results(folder)).verdicts()
    assert [c["claim"] for c in again] == [c["claim"] for c in shipped]
    for new, old in zip(again, shipped):
        assert new["verdict"] == old["verdict"], new["claim"]
        for a, b in zip(new["parts"], old["parts"]):
            assert a["label"] == b["label"]
            for k in ("value", "lo", "hi", "p"):
                assert a[k] == pytest.approx(b[k], rel=1e-9, nan_ok=True), (new["claim"], k)


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_cli_prints_the_shipped_verdicts(folder, capsys):
    assert main(["findings", str(folder), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    shipped = json.loads((folder / "verdicts.json").read_text())
    assert [c["verdict"] for c in printed] == [c["verdict"] for c in shipped]


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_provenance_is_complete(folder):
    prov = json.loads((folder / "provenance.json").read_text())
    assert PROVENANCE <= set(prov) and len(prov["commit"]) == 40
    spec = json.loads((folder / "spec.json").read_text())
    assert spec["name"] == prov["spec_name"]
    assert (prov["size"] == "full spec") == (prov["overrides_of_full_spec"] is None)


def test_shipped_total_is_under_20_mb():
    total = sum(f.stat().st_size for f in RESULTS.rglob("*") if f.is_file())
    assert total < 20 * 2**20


def test_findings_cli_rejects_bad_paths(tmp_path, capsys):
    for bad in (str(tmp_path / "absent"), str(tmp_path)):
        with pytest.raises(SystemExit) as exc:
            main(["findings", bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "marginlab findings: error: path" in err and "Traceback" not in err


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_notebook_helpers_open_the_shipped_results(folder, monkeypatch):
    """What notebooks 03-06 show by default: the shipped tables, a summary computed from the report, the
    paper-vs-ours table."""
    from marginlab.experiments import notebook as nb
    from marginlab.experiments.paper import paper_vs_ours

    monkeypatch.chdir(RESULTS.parent.parent / "notebooks")
    res = nb.open_study(folder.name)
    assert res.path.resolve() == folder.resolve()
    rep = report_for(res)
    text = nb.verdict_summary(res).data
    assert f"{rep.reproduced} of {len(rep.claims)} claims reproduced" in text and "shipped results" in text
    table = paper_vs_ours(res)
    assert list(table.columns) == ["item", "paper", "ours", "setting difference"] and len(table) >= 2
    assert all(res.spec.name in s for s in table["setting difference"])
    with pytest.raises(ValueError, match="study must be one of"):
        nb.open_study("no-such-study")
