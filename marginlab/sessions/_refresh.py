"""Every sample's margin, solved beside the training instead of inside one Play tick.

Solving all of a playground's samples at once takes ~50-160 ms (the batched solver's iterations over tiny
tensors: most of it is a fixed cost per call, so solving a few samples per tick would cost more in total and
still exceed the budget on a busy machine). A :class:`MarginRefresh` freezes a copy of the weights and the
samples when it starts and is solved on one worker thread while the ticks go on; the session publishes the
result at the first tick after it is done. The margins are then exact for the weights of a few ticks ago,
one consistent set, never a mixture of weight versions. (Measured here with the machine 3x oversubscribed:
ticks of 5-34 ms with the refresh beside them, against 150-200 ms for the ticks that solved it inline.)
"""

from __future__ import annotations

import copy

import numpy as np

__all__ = ["MarginRefresh"]


class MarginRefresh:
    """All margins of ``X`` (labels ``y``) at a frozen copy of ``model``, tagged with the weight ``version``,
    the ``epoch``, the ``data_version`` (rows line up only if no point was added meanwhile) and whether the
    solve is ``exact`` (unbounded iterations)."""

    def __init__(self, model, X, y, *, version: int, data_version: int, epoch: float, exact: bool,
                 options: dict):
        self.model = copy.deepcopy(model).eval()
        self.X, self.y = np.array(X, copy=True), np.array(y, copy=True)
        self.version, self.data_version, self.epoch = int(version), int(data_version), float(epoch)
        self.exact, self.options = bool(exact), dict(options)
        self.future = None

    def solve(self):
        """The :class:`~marginlab.margins.MarginResult` (signed: misclassified samples negative)."""
        from ..margins import compute_margins

        return compute_margins(self.model, self.X, method="batched", y=self.y, signed=True, **self.options)

    def start(self, pool) -> MarginRefresh:
        """Solve on ``pool`` (a one-worker executor); :attr:`done` / :meth:`result` follow it."""
        self.future = pool.submit(self.solve)
        return self

    @property
    def done(self) -> bool:
        return self.future is None or self.future.done()

    def result(self, timeout: float | None = None):
        return self.solve() if self.future is None else self.future.result(timeout)
