"""The explorer's pure figure builders: data in, go.Figure out."""

import numpy as np
import plotly.graph_objects as go
import pytest

from marginlab.viz.embedding import embedding_figure
from marginlab.viz.histograms import margin_histogram_figure, sample_groups
from marginlab.viz.images import image_panels_figure, margin_bars_figure


def test_embedding_figure_covers_every_sample_once():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(1500, 2))
    y = rng.integers(0, 10, 1500)
    fig = embedding_figure(
        Z, y, category_names=[f"digit {k}" for k in range(10)], highlight=[3, 4], selected=7
    )
    data = fig.data[:-2]
    assert all(isinstance(t, go.Scattergl) for t in data)  # thousands of points: WebGL
    idx = np.concatenate([np.asarray(t.customdata) for t in data])
    assert sorted(idx.tolist()) == list(range(1500))
    for t in data:  # each trace's points are the samples its customdata names
        np.testing.assert_allclose(np.asarray(t.x), Z[np.asarray(t.customdata), 0], rtol=1e-6)
    assert data[0].name == "digit 0"
    assert [t.name for t in fig.data[-2:]] == ["highlight", "selected"]
    assert len(fig.data[-2].x) == 2 and fig.data[-1].x[0] == pytest.approx(Z[7, 0])
    m = rng.random(50)
    m[5] = np.nan
    cont = embedding_figure(Z[:50], m, kind="continuous", colorbar_title="margin")
    assert isinstance(cont.data[0], go.Scatter) and cont.data[0].name == "no value"
    assert len(cont.data[1].x) == 49
    with pytest.raises(ValueError, match="shape"):
        embedding_figure(Z[:, :1], y)


def test_image_panels_and_bars():
    img = np.random.default_rng(0).random((1, 28, 28))
    fig = image_panels_figure([("a", img, "image"), ("d", img - 0.5, "diff"), ("none", None, "image")])
    assert len(fig.data) == 3 and fig.data[1].zmin == -fig.data[1].zmax
    bars = margin_bars_figure([np.nan, 1.0, 0.5], pred=0, boundary_class=2)
    assert np.isnan(bars.data[0].y[0]) and bars.data[0].marker.color[2] == "#EF553B"


def test_histogram_groups_and_counts():
    corrupted = np.array([True, False, False, True, False])
    groups = sample_groups(corrupted, "label")
    fig = margin_histogram_figure(np.array([0.1, 0.5, np.nan, 0.2, 0.9]), groups, value_range=(0.1, 0.3))
    counts = {t.name: int(np.sum(t.y)) for t in fig.data}
    assert counts == {"clean:label-corrupted (2)": 2, "corrupt:label-corrupted (2)": 2}
    assert [t.marker.color for t in fig.data] == ["#2CA02C", "#D62728"]  # seed 000: green clean, red corrupt
    assert fig.layout.dragmode == "select"
    assert len(fig.layout.shapes) == 1
    with pytest.raises(ValueError, match="clean"):
        sample_groups(corrupted, None)
