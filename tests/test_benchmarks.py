"""benchmarks/margins.py: the comparison's core on a tiny model, with whichever peers are installed."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
margins = pytest.importorskip("margins")
peers = pytest.importorskip("peers")

from marginlab.models.mlp import MLP  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = MLP((20,), (16,), 4, seed=0)
    X = torch.rand(6, 20)
    c = margins.compare(model, X, steps=20, log=lambda *a: None)
    return model, X, c


def _installed(peer):
    return importlib.util.find_spec(peer.library) is not None


def test_table_columns_and_rows(tiny):
    _, X, c = tiny
    assert list(c.table.columns) == margins.COLUMNS
    names = list(c.table["method"])
    assert names[:3] == ["marginlab batched", "marginlab deepfool", "marginlab linearized"]
    ran = [p.name for p in peers.PEERS if p.name not in c.skipped]
    assert names[3:] == ran
    assert all(why for why in c.skipped.values())
    assert sum(c.batched_status.values()) == len(X)
    exact = c.table[c.table["method"] != "marginlab linearized"]
    assert (exact["optimality"] <= 1 + 1e-12).all() and (exact["optimality"] >= 0).all()
    assert c.table["within 0.1%"].between(0, 1).all()
    assert (c.table["s/sample"] > 0).all() and (c.table["fwd/sample"] > 0).all()
    assert np.isnan(c.table.set_index("method").loc["marginlab linearized", "verified"])  # an estimate
    text = margins.format_table(c.table)
    assert text.splitlines()[0].split()[:2] == ["method", "s/sample"] and "est." in text


@pytest.mark.parametrize("peer", peers.PEERS, ids=lambda p: p.name)
def test_peer_distances_are_verified(tiny, peer):
    """Every distance a peer reports is ``||point - x||`` for a point whose ray from x crosses the decision
    boundary within ``tol`` of it (checked again here, in float64). The bracket's ends are probed ``tol``
    beyond it on either side: the root finder can land exactly on a piecewise-linear boundary, where the
    winning class at the point itself depends on rounding (1e-16) and thus on the batch it is evaluated in."""
    model, X, c = tiny
    if not _installed(peer):
        assert peer.name in c.skipped
        pytest.skip(f"{peer.library} is not installed")
    out = next(o for o in c.outcomes if o.name == peer.name)
    tol = margins.get_method("batched").tol
    net = copy.deepcopy(model).double().eval()
    x = X.double()
    pred = net(x).argmax(1)
    ok = np.isfinite(out.dist)
    assert ok.any(), f"{peer.name} verified no sample"
    P = torch.as_tensor(out.point[ok])
    w = torch.as_tensor(out.width[ok])
    with torch.no_grad():
        across = net(x[ok] + (1 + tol) * (P - x[ok])).argmax(1)
        inside = net(x[ok] + ((1 - w) * (1 - tol))[:, None] * (P - x[ok])).argmax(1)
    assert (across != pred[ok]).all()
    assert (inside == pred[ok]).all()
    assert (w <= tol).all()
    np.testing.assert_allclose(out.dist[ok], torch.linalg.vector_norm(P - x[ok], dim=1).numpy(), rtol=1e-12)
    assert out.fwd > 0 and out.bwd >= 0


def test_summarize_known_answers():
    O = peers.Outcome
    a = O("marginlab batched", np.array([1.0, 2.0, np.nan]), seconds=3.0, fwd=1, bwd=1)
    b = O("b", np.array([1.01, 2.0, 3.0]), seconds=6.0, fwd=1, bwd=-1)
    est = O("marginlab linearized", np.array([0.5, 0.5, 0.5]), seconds=1.0, fwd=1, bwd=0, estimate=True)
    t = margins.summarize([a, b, est]).set_index("method").rename(index={"marginlab batched": "a"})
    assert t.loc["a", "optimality"] == pytest.approx((1 + 1 + 0) / 3)
    assert t.loc["b", "optimality"] == pytest.approx((1 / 1.01 + 1 + 1) / 3)
    assert t.loc["a", "within 0.1%"] == pytest.approx(2 / 3)
    assert t.loc["b", "within 0.1%"] == pytest.approx(2 / 3)
    assert t.loc["a", "worst gap"] == 0 and t.loc["b", "worst gap"] == pytest.approx(0.01)
    assert t.loc["a", "verified"] == pytest.approx(2 / 3) and t.loc["b", "verified"] == 1
    assert np.isnan(t.loc["b", "bwd/sample"])
    assert t.loc["b", "x batched"] == 2 and t.loc["a", "below batched"] == 0
    assert t.loc["b", "below batched"] == 0
    assert t.loc["marginlab linearized", "below batched"] == pytest.approx(2 / 3)
    assert t.loc["b", "max below"] == 0 and t.loc["marginlab linearized", "max below"] == pytest.approx(0.75)
    # an estimate is compared with the best verified distance too (best / estimate), and sets no best
    assert t.loc["marginlab linearized", "optimality"] == pytest.approx((2 + 4 + 6) / 3)


def test_counting_wrapper_counts_rows_and_survives_copies():
    tally = peers.Tally()
    net = peers.Counting(torch.nn.Linear(3, 2), tally)
    z = torch.zeros(5, 3, requires_grad=True)
    out = net(z)
    torch.autograd.grad(out[:, 0].sum(), z, retain_graph=True)
    torch.autograd.grad(out[:, 1].sum(), z)
    assert (tally.fwd, tally.bwd) == (5, 10)
    twin = copy.deepcopy(net).double()
    with torch.no_grad():
        twin(torch.zeros(2, 3, dtype=torch.float64))
    assert (tally.fwd, tally.bwd) == (7, 10)


def test_boxed_maps_back_and_forth():
    boxed = peers.Boxed(torch.nn.Identity(), 2.0)
    x = torch.tensor([[-0.5, 0.0, 1.0, 1.5]])
    assert torch.equal(boxed.to_u(x), torch.tensor([[0.0, 0.25, 0.75, 1.0]]))
    assert torch.equal(boxed.to_x(boxed.to_u(x)), x)


def test_adv_lib_placeholders_are_removed():
    before = {k: sys.modules.get(k) for k in ("visdom", "torchvision")}
    with peers.importing_adv_lib() as lent:
        assert all(getattr(sys.modules[k], "__marginlab_placeholder__", False) for k in lent)
    for k in ("visdom", "torchvision"):
        m = sys.modules.get(k)
        assert m is None or not getattr(m, "__marginlab_placeholder__", False)
        assert k in lent or m is before[k]


@pytest.mark.parametrize("argv, word", [
    (["--peers", "nope"], "--peers"), (["-n", "0"], "-n"), (["--box-scale", "0.5"], "--box-scale"),
    (["--threads", "0"], "--threads")])
def test_cli_rejects_bad_input(argv, word, capsys):
    with pytest.raises(SystemExit) as e:
        margins.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert word in err and "Traceback" not in err


def test_cli_peer_names():
    names = margins.parse(["--peers", "foolbox-ddn, adv-lib-alma"]).peer_names
    assert names == ["foolbox DDN", "adv-lib ALMA"]
    assert margins.parse(["--peers", "none"]).peer_names == []
    assert margins.parse([]).peer_names is None


def test_foolbox_fmn_finding_matches_the_row(tiny):
    _, _, c = tiny
    if "foolbox FMN" in c.skipped:
        pytest.skip("foolbox is not installed")
    (finding,) = c.findings
    r = peers.foolbox_fmn_projection(0.5)
    row = c.table.set_index("method").loc["foolbox FMN", "notes"]
    assert ("no-op" in finding) == (r > 0.5 + 1e-6) == ("BROKEN" in row)


def test_missing_peers_are_skipped_with_the_reason(monkeypatch):
    for lib in ("foolbox", "torchattacks", "adv_lib"):
        for key in [k for k in sys.modules if k == lib or k.startswith(lib + ".")] + [lib]:
            monkeypatch.setitem(sys.modules, key, None)  # import fails as if not installed
    model = MLP((5,), (8,), 3, seed=1)
    c = margins.compare(model, torch.rand(3, 5), peers=["foolbox DDN", "torchattacks FAB", "adv-lib ALMA"],
                        steps=5, log=lambda *a: None)
    assert list(c.table["method"]) == ["marginlab batched", "marginlab deepfool", "marginlab linearized"]
    assert set(c.skipped) == {"foolbox DDN", "torchattacks FAB", "adv-lib ALMA"}
    assert "pip install foolbox" in c.skipped["foolbox DDN"]
    assert "pip install --no-deps adv-lib" in c.skipped["adv-lib ALMA"]
    assert c.findings == []


def test_each_peer_gets_its_own_budget(monkeypatch):
    seen = {}

    def stand_in(name):
        def run(model, u, y, t, steps):
            seen[name] = (steps, None if t is None else len(t), len(u))
            return u.clone()  # no attack: nothing verifies
        return run

    fakes = (peers.Peer("a", "torch", ("targeted",), 1000, 100, stand_in("a")),
             peers.Peer("b", "torch", ("untargeted",), 50, 50, stand_in("b")),
             peers.Peer("c", "torch", ("targeted", "untargeted"), 1000, 100, stand_in("c")))
    monkeypatch.setattr(peers, "PEERS", fakes)
    model = MLP((5,), (8,), 3, seed=1)
    c = margins.compare(model, torch.rand(4, 5), steps=60, log=lambda *a: None)
    assert seen == {"a": (60, 8, 8), "b": (50, None, 4), "c": (60, 8, 8)}  # 4 samples x 2 other classes
    out = {o.name: o for o in c.outcomes}
    assert [out[k].extra["steps"] for k in "abc"] == [60, 50, 60]
    assert all(np.isnan(out[k].dist).all() for k in "abc")
    assert (c.table.set_index("method").loc[["a", "b", "c"], "optimality"] == 0).all()
    c = margins.compare(model, torch.rand(4, 5), quick=True, peers=["a", "b"], mode="untargeted",
                        log=lambda *a: None)
    assert seen["a"] == (100, 8, 8)  # "a" runs targeted only
    assert seen["b"] == (50, None, 4)
