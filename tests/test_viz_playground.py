"""Figure builders of marginlab.viz (playground figures and the shared grid/boundary helpers)."""

import subprocess
import sys

import numpy as np
import pytest

from marginlab.viz import common
from marginlab.viz import histograms as vh
from marginlab.viz import playground as vp


def _linear_logits(grid, w, b):
    """Logits of a linear classifier: (n, K) = points @ w + b."""
    return grid.points.astype(np.float64) @ np.asarray(w, float) + np.asarray(b, float)


def test_make_grid_square_and_covers_points():
    X = np.array([[0.0, 0.0], [4.0, 1.0]])
    g = common.make_grid(X, resolution=41, pad=0.1)
    assert g.shape == (41, 41)
    assert g.points.shape == (41 * 41, 2) and g.points.dtype == np.float32
    (x0, x1), (y0, y1) = g.x_range, g.y_range
    assert x1 - x0 == pytest.approx(y1 - y0, rel=1e-5)  # equal spans: distances are not distorted
    assert x0 < 0 and x1 > 4 and y0 < 0 and y1 > 1
    # row-major: point k lies at (xs[k % nx], ys[k // nx]), so values.reshape(ny, nx) matches heatmap z
    assert np.allclose(g.points[41 + 3], [g.xs[3], g.ys[1]])
    assert g.cell_center(g.xs[7] + 1e-3, g.ys[9] - 1e-3) == (pytest.approx(g.xs[7]), pytest.approx(g.ys[9]))


def test_boundary_segments_lie_on_a_linear_boundary():
    g = common.make_grid(np.array([[-1.0, -1.0], [1.0, 1.0]]), resolution=31)
    # f1 - f0 = x + 0.5 y - 0.3: the boundary is the line x + 0.5 y = 0.3
    L = _linear_logits(g, [[0.0, 1.0], [0.0, 0.5]], [0.0, -0.3])
    x, y = common.boundary_segments(g, L)
    assert x.dtype == np.float32 and len(x) % 3 == 0 and len(x) > 0
    pts = np.stack([x, y], 1).reshape(-1, 3, 2)
    assert np.isnan(pts[:, 2]).all()
    ends = pts[:, :2].reshape(-1, 2)
    assert np.abs(ends[:, 0] + 0.5 * ends[:, 1] - 0.3).max() < 1e-5
    # the pieces span the whole grid from bottom to top
    assert ends[:, 1].min() < g.ys[1] and ends[:, 1].max() > g.ys[-2]


def test_boundary_segments_three_classes_and_constant():
    g = common.make_grid(np.array([[-1.0, -1.0], [1.0, 1.0]]), resolution=40)
    ang = 2 * np.pi * np.arange(3) / 3
    W = np.stack([np.cos(ang), np.sin(ang)])  # (2, 3): three sectors meeting at the origin
    x, y = common.boundary_segments(g, _linear_logits(g, W, np.zeros(3)))
    ends = np.stack([x, y], 1).reshape(-1, 3, 2)[:, :2].reshape(-1, 2)
    logits = ends.astype(np.float64) @ W
    top = np.sort(logits, 1)
    # every drawn point is (close to) a tie of the two largest logits, within one cell
    cell = float(g.xs[1] - g.xs[0])
    assert np.all(top[:, -1] - top[:, -2] <= 2 * cell)
    # a classifier that predicts one class everywhere has no boundary
    x0, y0 = common.boundary_segments(g, np.tile([1.0, 0.0], (len(g.points), 1)))
    assert len(x0) == 0 and len(y0) == 0


def test_region_levels_encode_class_and_confidence():
    g = common.make_grid(np.array([[-1.0, -1.0], [1.0, 1.0]]), resolution=20)
    L = _linear_logits(g, [[0.0, 5.0], [0.0, 0.0]], [0.0, 0.0])
    z = common.region_levels(L, g.shape)
    assert z.shape == g.shape and z.dtype == np.int8
    cls = z // common.REGION_LEVELS
    assert np.array_equal(cls, (L.argmax(1)).reshape(g.shape))
    level = z % common.REGION_LEVELS
    assert level[:, 0].max() > level[:, 9].min()  # far from the boundary is more confident
    cs = common.region_colorscale(3)
    assert cs[0][0] == 0 and cs[-1][0] == 1 and len(cs) == 2 * 3 * common.REGION_LEVELS


def test_decision_surface_layout_and_traces():
    g = common.make_grid(np.array([[-1.0, -1.0], [1.0, 1.0]]), resolution=25)
    L = _linear_logits(g, [[0.0, 1.0], [0.0, 0.0]], [0.0, 0.0])
    rng = np.random.default_rng(0)
    Xtr, ytr = rng.normal(size=(30, 2)), rng.integers(0, 2, 30)
    kind = np.zeros(30, np.int8)
    kind[:4] = [1, 2, 3, 1]
    fig = vp.decision_surface(
        g,
        L,
        n_classes=2,
        train_X=Xtr,
        train_y=ytr,
        train_kind=kind,
        test_X=Xtr[:5],
        test_y=ytr[:5],
        selected=[0.5, 0.5],
        boundary_point=[0.0, 0.5],
        estimates={"linearized": [0.01, 0.5]},
        all_segments=(Xtr, np.zeros_like(Xtr)),
        width=400,
        height=380,
    )
    names = [t.name for t in fig.data]
    assert names == [
        "regions",
        "unit",
        "boundary",
        "train",
        "train (corrupted)",
        "test",
        "not converged",
        "all segments",
        "linearized",
        "deepfool",
        "segment",
        "boundary point",
        "selected",
    ]
    assert len(names) == len(vp.SURFACE_TRACES)
    assert fig.data[0].type == "heatmap" and fig.data[0].hoverinfo == "none"  # receives clicks anywhere
    assert len(fig.data[3].x) == 26 and len(fig.data[4].x) == 4
    assert list(fig.data[4].marker.symbol) == ["x", "diamond", "star", "x"]
    assert sorted(fig.data[4].customdata) == [0, 1, 2, 3]  # rows into the training set
    assert len(fig.data[6].x) == 0  # no sample marked as not converged yet
    assert len(fig.data[7].x) == 3 * 30
    assert list(fig.data[10].x[:2]) == [0.5, 0.0] and list(fig.data[11].x) == [0.0]
    assert len(fig.data[9].x) == 0  # no DeepFool estimate given
    assert fig.layout.width == 400 and fig.layout.yaxis.scaleanchor == "x"
    assert fig.layout.xaxis.range == g.x_range


def test_unverified_rings_carry_the_status_words():
    words = np.array(["budget exhausted", "unresolved pair 1"], object)
    p = vp.unverified_props([[0.0, 1.0], [2.0, 3.0]], words)
    assert list(p["x"]) == [0.0, 2.0] and p["text"] == ["budget exhausted", "unresolved pair 1"]


def test_margin_histogram_counts():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=50), rng.normal(1, 1, size=7)
    b[0] = np.nan
    fig = vh.margin_histogram({"clean": a, "corrupted": b, "empty": np.zeros(0)}, bins=12)
    assert [t.type for t in fig.data] == ["bar"] * 3
    assert int(np.sum(fig.data[0].y)) == 50
    assert int(np.sum(fig.data[1].y)) == 6 and "1 unsolved" in fig.data[1].name
    assert int(np.sum(fig.data[2].y)) == 0
    assert np.array_equal(fig.data[0].x, fig.data[1].x)  # shared bins
    # identical values do not break the bins
    props = vh.histogram_props({"same": np.ones(5)})
    assert int(props[0]["y"].sum()) == 5


def test_training_and_margin_curves():
    from marginlab.train import History

    h = History(
        epoch=[1, 2, 3],
        loss=[1.0, 0.5, 0.2],
        acc=[0.5, 0.8, 0.9],
        val_loss=[1.1, 0.6, 0.4],
        val_acc=[0.5, 0.7, 0.85],
    )
    fig = vp.training_curves(h)
    assert len(fig.data) == 4
    assert list(fig.data[0].y) == pytest.approx([1.0, 0.5, 0.2])
    assert list(fig.data[3].y) == pytest.approx([0.5, 0.7, 0.85])
    empty = vp.training_curves({})
    assert all(len(t.x) == 0 for t in empty.data)
    mc = vp.margin_curves([0.5, 1.0], {"train min": [-0.1, 0.05], "train mean": [0.2, 0.3]})
    assert [t.name for t in mc.data] == ["train min", "train mean"]
    assert list(mc.data[0].y) == pytest.approx([-0.1, 0.05])


def test_viz_import_is_lazy():
    code = (
        "import sys, marginlab.viz as v, marginlab.widgets as w; "
        "assert 'plotly' not in sys.modules and 'ipywidgets' not in sys.modules, 'imported early'; "
        "assert callable(v.decision_surface) and 'torch' not in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_discrete_regions_and_unit_strip():
    g = common.make_grid(np.array([[-1.0, -1.0], [1.0, 1.0]]), resolution=10)
    L = _linear_logits(g, [[0.0, 1.0], [0.0, 0.0]], [0.0, 0.0])
    z = vp.regions_props(g, L, 2, discrete=True)["z"]
    assert set(np.unique(z % common.REGION_LEVELS)) == {common.REGION_LEVELS - 1}
    assert np.array_equal(z // common.REGION_LEVELS, common.region_levels(L, g.shape) // common.REGION_LEVELS)
    maps = np.stack([np.full((10, 10), -2.0), np.linspace(-1, 3, 100).reshape(10, 10)])
    fig = vp.unit_strip(maps, g, layer=1)
    assert [t.name for t in fig.data] == ["unit 0", "unit 1"]
    assert fig.data[1].zmin == -3 and fig.data[1].zmax == 3  # symmetric: 0 is white
    assert vp.unit_props(g, None) == {"visible": False}
