"""Outside peers for ``benchmarks/margins.py``: minimum-norm attacks of foolbox 3, torchattacks and adv-lib.

Each peer attacks a float32 copy of the model and its adversarial points are then refined onto the decision
boundary and checked by marginlab's own float64 ray verification
(:func:`marginlab.margins.verify.verify_rays`), so every distance in the table is verified the same way.

Two adaptations, the same for every peer:

* **No box.** marginlab's margin is the distance to the boundary in all of R^D (seed 000 Eq. 1), while the
  attacks keep their iterates in [0, 1]^D; 40 % of the coordinates of MNIST boundary points lie outside
  [0, 1]. The peers therefore attack ``g(u) = f(0.5 + s (u - 0.5))`` with u in [0, 1] (``s = box_scale``,
  default 2: x in [-0.5, 1.5]); distances are measured back in x. Rows whose point touches the box are
  counted.
* **Passes.** A counting wrapper around the model counts forward rows and backward rows (one hook on the
  output per backward pass that reaches it).

Install (optional): ``pip install foolbox``; ``pip install --no-deps torchattacks adv-lib`` (torchattacks pins
``requests~=2.25.1`` and wants torchvision, which pulls another torch; adv-lib wants visdom, which does not
build here). adv-lib imports torchvision and visdom at module level for features not used here (LPIPS, live
plots): when they are missing or broken, :func:`importing_adv_lib` lends empty placeholder modules for the
duration of the import only.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import math
import sys
import time
import types
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from marginlab.margins.verify import verify_rays

__all__ = ["Tally", "Counting", "Boxed", "Peer", "PEERS", "peer_names", "unavailable", "run_peer",
           "Outcome", "importing_adv_lib", "foolbox_fmn_projection"]


class Tally:
    """Forward and backward rows, shared by every (deep) copy of a :class:`Counting` module."""

    def __init__(self):
        self.fwd = 0
        self.bwd = 0

    def __deepcopy__(self, memo):  # marginlab deep-copies the model (float64 copy): keep one tally
        return self

    def reset(self):
        self.fwd = self.bwd = 0


class Counting(nn.Module):
    """Counts the rows of every forward pass and of every backward pass through the output."""

    def __init__(self, net: nn.Module, tally: Tally | None = None):
        super().__init__()
        self.net = net
        self.tally = Tally() if tally is None else tally

    def forward(self, x):
        out = self.net(x)
        rows = int(x.shape[0])
        self.tally.fwd += rows
        if out.requires_grad:
            out.register_hook(lambda g: self._backward(rows))
        return out

    def _backward(self, rows):
        self.tally.bwd += rows


class Boxed(nn.Module):
    """``u -> net(0.5 + scale (u - 0.5))``: the attacks' [0, 1] box becomes [0.5 - s/2, 0.5 + s/2] in x."""

    def __init__(self, net: nn.Module, scale: float):
        super().__init__()
        self.net = net
        self.scale = float(scale)

    def forward(self, u):
        return self.net(0.5 + self.scale * (u - 0.5))

    def to_x(self, u):
        return 0.5 + self.scale * (u - 0.5)

    def to_u(self, x):
        return 0.5 + (x - 0.5) / self.scale


@contextlib.contextmanager
def importing_adv_lib():
    """Lend empty ``visdom`` / ``torchvision`` modules while adv-lib imports, where the real ones are missing
    or broken (adv-lib imports them at module level for its live-plot logger and LPIPS distance, neither used
    by the L2 attacks here); they are removed again afterwards. Yields the names lent."""
    lent = []
    for name in ("visdom", "torchvision"):
        try:
            importlib.import_module(name)
        except Exception:  # missing, or a torchvision built for another torch (RuntimeError)
            for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
                del sys.modules[key]
            mod = types.ModuleType(name)
            mod.__marginlab_placeholder__ = True
            if name == "torchvision":
                mod.models = types.ModuleType("torchvision.models")
            sys.modules[name] = mod
            lent.append(name)
    try:
        yield lent
    finally:
        for name in lent:
            sys.modules.pop(name, None)


def foolbox_fmn_projection(radius=0.5):
    """Norm of ``L2FMNAttack.project`` applied to a point at distance 2 onto an l2 ball of ``radius``
    (a working projection returns ``radius``)."""
    import eagerpy as ep
    import foolbox as fb

    x0, x = torch.zeros(1, 4), torch.ones(1, 4)
    eps = ep.astensor(torch.tensor([radius]))
    out = fb.attacks.L2FMNAttack().project(ep.astensor(x), ep.astensor(x0), eps)
    return float(torch.linalg.vector_norm(out.raw - x0))


# --- the peers: (model on u, u, labels, targets or None, steps) -> adversarial u ---------------------------

def _foolbox(attack_cls):
    def run(model, u, y, t, steps):
        import foolbox as fb

        fm = fb.PyTorchModel(model, bounds=(0.0, 1.0), device=u.device)
        crit = fb.criteria.Misclassification(y) if t is None else fb.criteria.TargetedMisclassification(t)
        return attack_cls(fb)(steps=steps).run(fm, u, crit)
    return run


def _torchattacks_fab(model, u, y, t, steps):
    import torchattacks as ta

    k = int(model(u[:1]).shape[1])
    # eps only caps the reported success (and random restarts, off here): accept any adversarial point
    atk = ta.FAB(model, norm="L2", eps=math.sqrt(u[0].numel()) + 1.0, steps=steps, n_restarts=1, n_classes=k)
    if t is not None:
        atk.set_mode_targeted_by_function(lambda inputs, labels: t, quiet=True)
    return atk(u, y)


def _torchattacks_deepfool(model, u, y, t, steps):
    import torchattacks as ta

    return ta.DeepFool(model, steps=steps, overshoot=0.02)(u, y)


def _adv_lib(name, **kw):
    def run(model, u, y, t, steps):
        with importing_adv_lib():
            attacks = importlib.import_module("adv_lib.attacks")
        fn = getattr(attacks, name)
        steps_kw = {"num_steps": steps} if name == "alma" else {"steps": steps}
        return fn(model, u, y if t is None else t, targeted=t is not None, **steps_kw, **kw)
    return run


@dataclass(frozen=True)
class Peer:
    """One outside method: its library (import name), whether it runs targeted toward each other class or
    untargeted (as its authors run it for minimum-norm results), its step budgets (full, ``--quick``)."""

    name: str
    library: str
    modes: tuple
    steps: int
    quick_steps: int
    run: object
    note: str = ""


PEERS = (
    Peer("foolbox DDN", "foolbox", ("targeted", "untargeted"), 1000, 100,
         _foolbox(lambda fb: fb.attacks.DDNAttack)),
    Peer("foolbox FMN", "foolbox", ("targeted", "untargeted"), 1000, 100,
         _foolbox(lambda fb: fb.attacks.L2FMNAttack)),
    Peer("torchattacks FAB", "torchattacks", ("targeted", "untargeted"), 100, 20, _torchattacks_fab),
    Peer("torchattacks DeepFool", "torchattacks", ("untargeted",), 50, 50, _torchattacks_deepfool,
         note="untargeted only (DeepFool picks the class)"),
    Peer("adv-lib ALMA", "adv_lib", ("targeted", "untargeted"), 1000, 100, _adv_lib("alma")),
    Peer("adv-lib FMN", "adv_lib", ("targeted", "untargeted"), 1000, 100, _adv_lib("fmn", norm=2)),
    Peer("adv-lib DDN", "adv_lib", ("targeted", "untargeted"), 1000, 100, _adv_lib("ddn", levels=None),
         note="levels=None: no 8-bit quantisation"),
)


def peer_names():
    return [p.name for p in PEERS]


def unavailable(peer: Peer) -> str | None:
    """Why ``peer`` cannot run here (None when it can)."""
    try:
        if peer.library == "adv_lib":
            with importing_adv_lib():
                importlib.import_module("adv_lib.attacks")
        else:
            importlib.import_module(peer.library)
    except Exception as exc:  # an import error of any kind: report it, never crash the benchmark
        hint = {"foolbox": "pip install foolbox", "torchattacks": "pip install --no-deps torchattacks",
                "adv_lib": "pip install --no-deps adv-lib"}[peer.library]
        return f"{type(exc).__name__}: {exc} ({hint})"
    return None


@dataclass
class Outcome:
    """One method's result on the n samples: ``dist`` verified distances (NaN where none), the verified
    ``point`` (n, D) and its bracket ``width``, wall-clock ``seconds`` in all, forward/backward rows
    (``bwd`` -1 where not counted), whether ``dist`` is an ``estimate``, and notes."""

    name: str
    dist: np.ndarray
    seconds: float
    fwd: float
    bwd: float
    estimate: bool = False
    point: np.ndarray | None = None
    width: np.ndarray | None = None
    notes: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def _rows(pred, n_classes, mode):
    """(sample, target) rows: every other class per sample (targeted) or one row per sample."""
    n = len(pred)
    if mode == "untargeted":
        return np.arange(n), None
    S = np.repeat(np.arange(n), n_classes)
    J = np.tile(np.arange(n_classes), n)
    keep = J != pred[S]
    return S[keep], J[keep]


def run_peer(peer: Peer, model: nn.Module, prob, f64, *, mode: str, steps: int, tol: float,
             box_scale: float = 2.0) -> Outcome:
    """Run ``peer`` on the problem's samples, refine every adversarial point onto the boundary along the ray
    from x (float64, the same verification as marginlab's methods) and keep each sample's smallest verified
    distance."""
    if mode not in peer.modes:
        mode = peer.modes[0]
    tally = Tally()
    net = copy.deepcopy(model).float().eval()
    for q in net.parameters():
        q.requires_grad_(False)  # gradients w.r.t. inputs only, as marginlab's solvers
    boxed = Boxed(net, box_scale)
    counted = Counting(boxed, tally).eval()
    x = prob.x0.float().reshape((-1,) + tuple(prob.shape))
    pred = np.asarray(prob.pred)
    S, J = _rows(pred, prob.n_classes, mode)
    St = torch.as_tensor(S, device=x.device)
    u = boxed.to_u(x[St])
    y = torch.as_tensor(pred[S], device=x.device)
    t = None if J is None else torch.as_tensor(J, device=x.device)
    t0 = time.perf_counter()
    adv = peer.run(counted, u, y, t, steps).detach()
    secs_attack = time.perf_counter() - t0
    box_rows = int(((adv <= 0) | (adv >= 1)).reshape(len(S), -1).any(1).sum())
    z = boxed.to_x(adv.to(torch.float64)).reshape(len(S), -1)
    t1 = time.perf_counter()
    v = verify_rays(f64, prob.x0[St], z, torch.as_tensor(pred[S]), tol=tol, p=2)
    secs = secs_attack + time.perf_counter() - t1
    out = _best_per_sample(prob.n, S, v)
    notes = [f"{mode}" + (f" x{prob.n_classes - 1}" if mode == "targeted" else "") + f", {steps} steps"]
    if peer.note:
        notes.append(peer.note)
    if box_rows:
        notes.append(f"{box_rows}/{len(S)} rows touch the box")
    return Outcome(peer.name, out["dist"], secs, (tally.fwd + float(v.evals.sum())) / prob.n,
                   tally.bwd / prob.n, point=out["point"], width=out["width"], notes=notes,
                   extra={"attack_seconds": secs_attack, "rows": len(S), "box_rows": box_rows, "mode": mode,
                          "steps": steps})


def _best_per_sample(n, S, v):
    """Each sample's verified row of smallest distance."""
    d = v.numpy()
    dist = np.where(d["ok"], d["dist"], np.inf)
    order = np.lexsort((dist, S))
    first = np.ones(len(order), bool)
    first[1:] = S[order][1:] != S[order][:-1]
    best = order[first]
    best = best[np.isfinite(dist[best])]
    out = {"dist": np.full(n, np.nan), "point": np.full((n, d["point"].shape[1]), np.nan),
           "width": np.full(n, np.nan)}
    out["dist"][S[best]] = dist[best]
    out["point"][S[best]] = d["point"][best]
    out["width"][S[best]] = d["width"][best]
    return out
