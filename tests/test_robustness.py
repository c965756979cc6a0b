"""Robust accuracy against known answers: a binary linear classifier flips under an attack exactly when its
margin in the attack's dual norm is below eps; a logit-scaled copy must not look more robust."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marginlab.attacks import perturb, robust_accuracy
from marginlab.models import LinearModel


@pytest.fixture(scope="module")
def linear():
    torch.manual_seed(0)
    model = LinearModel((6,), 2, seed=0).eval()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    with torch.no_grad():
        z = model(torch.as_tensor(X))
    y = z.argmax(1).numpy()  # every sample correctly classified: accuracy at eps 0 is 1
    W = model.linear.weight.detach().double().numpy()
    w = W[1] - W[0]
    gap = np.abs((z[:, 1] - z[:, 0]).double().numpy())
    return model, X, y, w, gap


def _scaled(model, factor):
    big = LinearModel((6,), 2, seed=0).eval()
    with torch.no_grad():
        big.linear.weight.copy_(model.linear.weight * factor)
        big.linear.bias.copy_(model.linear.bias * factor)
    return big


@pytest.mark.parametrize("loss", ["margin", "xent"])
def test_fgsm_on_a_linear_model_flips_exactly_below_the_l1_margin(linear, loss):
    model, X, y, w, gap = linear
    eps = 0.15
    # l_inf step eps * sign(w) changes the logit gap by eps * ||w||_1: the sample flips iff gap < that
    expect = float(np.mean(gap > eps * np.abs(w).sum()))
    assert 0.2 < expect < 0.95  # the eps is in the interesting range
    got = robust_accuracy(model, X, y, attacks=["fgsm", "ifgsm"], eps=[0.0, eps], loss=loss)
    acc = got.set_index(["attack", "eps"])["accuracy"]
    assert acc[("fgsm", 0.0)] == 1.0
    assert acc[("fgsm", eps)] == pytest.approx(expect, abs=1.0 / len(X))
    assert acc[("ifgsm", eps)] == pytest.approx(expect, abs=1.0 / len(X))
    assert (got.loc[got.eps > 0, "zero_grad"] == 0).all()


def test_l2_pgd_flips_exactly_below_the_l2_margin(linear):
    model, X, y, w, gap = linear
    eps = 0.4
    expect = float(np.mean(gap / np.linalg.norm(w) > eps))
    got = robust_accuracy(model, X, y, attacks=["pgd"], eps=[eps], steps=20)
    assert got.accuracy.iloc[0] == pytest.approx(expect, abs=2.0 / len(X))


def test_saturated_logits_are_not_reported_as_robust(linear):
    """Logits x 1e5 (a large-margin loss's scale): cross-entropy's gradient underflows to exactly zero, so the
    textbook FGSM leaves the inputs unchanged; the margin loss is scale-free and sees the same model."""
    model, X, y, w, gap = linear
    big = _scaled(model, 1e5)
    eps = 0.15
    expect = float(np.mean(gap > eps * np.abs(w).sum()))
    xent = robust_accuracy(big, X, y, attacks=["fgsm"], eps=[eps], loss="xent").iloc[0]
    assert xent.zero_grad > 0.9 and xent.accuracy > expect + 0.1  # masked: "robust"
    margin = robust_accuracy(big, X, y, attacks=["fgsm"], eps=[eps]).iloc[0]
    assert margin.zero_grad == 0 and margin.accuracy == pytest.approx(expect, abs=1.0 / len(X))


def test_noise_and_bad_input(linear):
    model, X, y, _, _ = linear
    got = robust_accuracy(model, X, y, attacks=["noise"], eps=[0.1])
    assert np.isnan(got.zero_grad.iloc[0]) and got.loss.iloc[0] is None
    with pytest.raises(ValueError, match="loss"):
        robust_accuracy(model, X, y, loss="hinge")
    with pytest.raises(ValueError, match="attack"):
        perturb(model, torch.as_tensor(X), torch.as_tensor(y), "cw", 0.1)


def test_findings_name_masked_models(linear):
    from marginlab.experiments.findings.notes import masking_note as _masking_note

    model, X, y, _, _ = linear
    big = _scaled(model, 1e5)
    masked = robust_accuracy(big, X, y, attacks=["fgsm"], eps=[0.15], loss="xent").assign(variant="big")
    note = _masking_note(masked)
    assert note is not None and "big fgsm (xent loss)" in note
    clean = robust_accuracy(big, X, y, attacks=["fgsm"], eps=[0.15]).assign(variant="big")
    assert _masking_note(clean) is None
