"""Parameter parsing, once (marginlab._validation): widths, declared constraints, option dicts; and the
package's own surface (every advertised submodule imports; registries are complete from any entry point)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import marginlab
from marginlab._validation import (
    Int,
    ListOf,
    Nullable,
    Real,
    Table,
    accepted_options,
    check_options,
    check_widths,
)


@pytest.mark.parametrize("given, expected", [
    ("16, 16", (16, 16)), ("16 16", (16, 16)), ("16;8", (16, 8)), ("  32 ", (32,)), ("", ()),
    ([4, 5], (4, 5)), (7, (7,)), ((), ()),
])
def test_one_width_parser_for_text_and_sequences(given, expected):
    assert check_widths(given) == expected


@pytest.mark.parametrize("given, kw, match", [
    ("16, x", {}, "hidden must be integers separated by commas"),
    ("0", {}, r"hidden\[0\] must be an integer in \[1, inf\], got 0"),
    ("600", {"max_width": 512}, r"hidden\[0\] must be an integer in \[1, 512\], got 600"),
    ("1 2 3", {"max_layers": 2}, "hidden must list between 0 and 2 layer widths, got 3"),
    ("", {"min_layers": 1}, "hidden must list between 1 and inf layer widths, got 0"),
    ([2.5], {}, r"hidden\[0\] must be an integer"),
    (None, {}, "hidden must be a sequence of positive integers"),
])
def test_bad_widths_name_the_parameter_and_range(given, kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        check_widths(given, **kw)


def _callee(a, b=1, *, c=2):
    return a, b, c


def test_options_are_checked_against_the_signature():
    assert accepted_options(_callee, skip=("a",)) == ["b", "c"]
    assert accepted_options(lambda **kw: kw) is None  # anything may be right: nothing is rejected
    assert check_options({"b": 3}, "opts", _callee, owner="f") == {"b": 3}
    with pytest.raises(ValueError, match=r"opts.d, opts.e are not options of f \(allowed: b, c\)"):
        check_options({"d": 1, "e": 2}, "opts", _callee, owner="f", skip=("a",))
    with pytest.raises(TypeError, match="opts must be an object"):
        check_options([1], "opts", _callee, owner="f")


def test_table_fills_defaults_checks_paths_and_runs_rules():
    seen = []
    table = Table({"n": (3, Int(1)), "xs": ([1.0], ListOf(Real(0.0))), "k": (None, Nullable(Int(0)))},
                  rules=[lambda d, where: seen.append((dict(d), where))])
    assert table({"n": 5}, "cfg") == {"n": 5, "xs": [1.0], "k": None}
    assert seen == [({"n": 5, "xs": [1.0], "k": None}, "cfg")]
    with pytest.raises(ValueError, match=r"cfg.xs\[1\] must be in \[0, inf\), got -1"):
        table({"xs": [0, -1]}, "cfg")
    with pytest.raises(ValueError, match=r"cfg: unknown key\(s\) 'm' \(allowed: k, n, xs\)"):
        table({"m": 1}, "cfg")
    assert Table(table.keys, fill=False)({"n": 2}, "cfg") == {"n": 2}  # checked, stored as written
    assert Nullable(ListOf(Int()), default=[7])(None, "v") == [7]


def test_every_advertised_submodule_imports():
    for name in marginlab.__all__:
        assert getattr(marginlab, name) is not None, name


def test_the_loss_registry_is_complete_from_any_entry_point():
    """Margin losses register themselves when marginlab.train is imported, which any submodule import does."""
    code = ("import json; from marginlab.train.losses import LOSSES, get_loss; "
            "print(json.dumps([sorted(LOSSES), type(get_loss('hinge')).__name__]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=True)
    names, hinge = json.loads(out.stdout)
    assert {"hinge", "odn", "large_margin", "amr", "rescaled_square"} <= set(names)
    assert hinge == "MultiClassHinge"


def test_no_import_cycles():
    """The house tool (beside the checkout in CI and for developers; never needed by users) finds no cycle."""
    tool = Path(__file__).resolve().parents[1].parent / "shared" / "tools" / "house.py"
    if not tool.exists():
        pytest.skip("../shared/tools/house.py is not present")
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(tool), str(repo)], capture_output=True, text=True, timeout=120)
    report = json.loads(out.stdout.splitlines()[0])
    assert report["cycles"] == []
