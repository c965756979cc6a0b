"""The explorer's selection toolkit: neighbours against brute force, searches over a tidy table, saved
selections as plain JSON."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from marginlab.analysis.selection import NeighbourIndex, Selections, find_rows, parse_query, search
from marginlab.embed import features
from marginlab.models import MLP


def _brute(F, row, k):
    d = np.linalg.norm(F - F[row], axis=1)
    d[row] = np.inf
    order = np.argsort(d, kind="stable")[:k]
    return order, d[order]


@pytest.mark.parametrize("dim", [2, 30])
def test_neighbours_match_brute_force(dim):
    F = np.random.default_rng(dim).normal(size=(300, dim))
    index = NeighbourIndex(F)
    for row in (0, 17, 299):
        rows, dist = index.query(row, k=7)
        b_rows, b_dist = _brute(F, row, 7)
        np.testing.assert_array_equal(rows, b_rows)
        np.testing.assert_allclose(dist, b_dist, rtol=1e-12)
    rows, dist = index.query_point(F[5] + 1e-9, k=1)
    assert rows.tolist() == [5]


def test_neighbours_in_a_layer_space_and_with_duplicates():
    model = MLP((2,), (8, 4), 2, seed=0, activation="tanh")  # no ties (ReLU maps many points to 0)
    X = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    index = NeighbourIndex.from_model(X, model=model, layer=2)
    with torch.no_grad():
        H = model.activations(torch.as_tensor(X), 2).numpy()
    np.testing.assert_array_equal(index.query(3, 5)[0], _brute(H.astype(np.float64), 3, 5)[0])
    np.testing.assert_array_equal(NeighbourIndex.from_model(X).F, features(X))
    # a sample with copies of itself: itself is never returned, its copies are (at distance 0)
    D = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [5.0, 5.0]])
    for row in range(3):
        rows, dist = NeighbourIndex(D).query(row, k=2)
        assert row not in rows and set(rows) <= {0, 1, 2} and (dist == 0).all()
    rows, _ = NeighbourIndex(D).query(3, k=10)
    assert sorted(rows.tolist()) == [0, 1, 2]  # fewer than k others


def test_neighbour_input_checks():
    with pytest.raises(ValueError, match="F must have shape"):
        NeighbourIndex(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        NeighbourIndex(np.array([[0.0], [np.nan]]))
    index = NeighbourIndex(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"row must be an integer in \[0, 3\], got 4"):
        index.query(4)
    with pytest.raises(ValueError, match="k must be"):
        index.query(0, k=0)
    with pytest.raises(TypeError, match="row must be an integer"):
        index.query(1.5)
    with pytest.raises(ValueError, match="f must be a finite vector of 2 features"):
        index.query_point([1.0, 2.0, 3.0])


@pytest.fixture
def table():
    return pd.DataFrame({
        "row": np.arange(8),
        "index": [10, 11, 12, 13, 20, 21, 22, -1],
        "label": [0, 1, 2, 3, 3, 5, 5, 1],
        "group": ["clean:label-corrupted", "corrupt:label-corrupted"] * 4,
    })


def test_find_rows_by_label_index_group(table):
    assert find_rows(table, label=3).tolist() == [3, 4]
    assert find_rows(table, label=[1, 5]).tolist() == [1, 5, 6, 7]
    assert find_rows(table, label="two", class_names=("zero", "one", "two")).tolist() == [2]
    assert find_rows(table, index="11-13").tolist() == [1, 2, 3]
    assert find_rows(table, index=range(20, 22)).tolist() == [4, 5]
    assert find_rows(table, group="corrupt").tolist() == [1, 3, 5, 7]
    assert find_rows(table, group="label-corrupted").tolist() == list(range(8))
    assert find_rows(table, group="Corrupt:Label-Corrupted", label=5).tolist() == [5]
    assert find_rows(table).tolist() == list(range(8))
    shuffled = table.iloc[::-1].reset_index(drop=True)
    assert find_rows(shuffled, label=3).tolist() == [3, 4]  # the row column, not positions
    assert find_rows(table.drop(columns="row"), index=[-1]).tolist() == [7]


def test_text_search(table):
    assert parse_query("label:3,5 group:corrupt 20-21") == {"label": ["3", "5"], "group": ["corrupt"],
                                                           "index": ["20-21"]}
    assert search(table, "class:5 group:corrupt").tolist() == [5]
    assert search(table, "11 13").tolist() == [1, 3]
    assert search(table, "").tolist() == list(range(8))
    with pytest.raises(ValueError, match="unknown key 'colour'"):
        search(table, "colour:red")
    with pytest.raises(ValueError, match="gives no value"):
        parse_query("label:")
    with pytest.raises(ValueError, match="index must be integers or ranges"):
        search(table, "index:ten")
    with pytest.raises(ValueError, match="cannot search by group"):
        find_rows(table.drop(columns="group"), group="clean")
    with pytest.raises(TypeError, match="query must be a string"):
        parse_query(3)


def test_saved_selections_roundtrip_as_json():
    sel = Selections(n=10)
    assert sel.save("near boundary", [3, 1, 3, 2]) == [1, 2, 3]
    mask = np.zeros(10, bool)
    mask[[0, 9]] = True
    sel.save("ends", mask)
    state = json.loads(json.dumps(sel.to_state()))
    back = Selections.from_state(state, n=10)
    assert back.names == ["near boundary", "ends"] and back.get("ends").tolist() == [0, 9]
    back.rename("ends", "edges")
    assert "edges" in back and "ends" not in back
    back.delete("edges")
    assert len(back) == 1
    back.save("empty", [])
    assert back.get("empty").tolist() == []


def test_saved_selection_checks():
    sel = Selections(n=5)
    with pytest.raises(ValueError, match=r"rows must lie in \[0, 4\], got \[0, 5\]"):
        sel.save("a", [0, 5])
    with pytest.raises(ValueError, match="selection name must be a non-empty string"):
        sel.save("  ", [0])
    with pytest.raises(ValueError, match="mask must have length 5"):
        sel.save("a", [True, False])
    sel.save("a", [1])
    with pytest.raises(ValueError, match="exists already"):
        sel.save("a", [2], overwrite=False)
    with pytest.raises(KeyError, match="no saved selection 'b'"):
        sel.get("b")
    with pytest.raises(ValueError, match="rows must be a list of row indices"):
        sel.save("c", [0.5])
    with pytest.raises(TypeError, match="selections must be a dict"):
        Selections.from_state([1, 2])
    with pytest.raises(ValueError, match=r"rows must lie in \[0, 1\]"):
        Selections.from_state({"a": [3]}, n=2)
