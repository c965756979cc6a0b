"""Point editing in the playground session: shift-click delete, move, brush and clear.

Every edit goes through :mod:`marginlab.data.edit` (the row bookkeeping) and
:func:`marginlab.analysis.editing.update_margins`: the weights do not change at an edit, so only the
margins of the rows the edit changed (moved or added samples) are solved; every other margin carries over.
Edits act on the training set (the test set is the held-out measure of the run and stays as it was drawn).
Each edit is an event of the run, so a link replays it at the same training step.
"""

from __future__ import annotations

import numpy as np

from ._threads import one_thread
from .base import SessionError

__all__ = ["EditingMixin"]

BRUSH_POINTS = 5  # points per brush stroke (a click)
BRUSH_RADIUS = 0.04  # brush spread, as a share of the plot's width
PICK_RADIUS = 0.06  # a shift-click deletes the nearest training point within this share of the width
MAX_TRAIN = 4000


class EditingMixin:
    """Edits of :class:`~marginlab.sessions.PlaygroundSession`'s training set (see the module docstring).
    ``last_edit`` says what the last edit did: ``{"what", "rows", "solved"}`` (``solved``: how many margins
    were re-solved)."""

    last_edit: dict | None = None

    def _span(self) -> float:
        lo, hi = self.grid.x_range
        return float(hi - lo)

    @staticmethod
    def _xy(x, y, what: str = "position"):
        ok = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in (x, y))
        if not ok or not (np.isfinite(x) and np.isfinite(y)):
            raise SessionError(f"{what} must be a finite point (x, y), got ({x!r}, {y!r})")
        return float(x), float(y)

    def _check_row(self, row) -> int:
        n = len(self.train)
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)) or not 0 <= row < n:
            raise SessionError(f"row must be a training sample between 0 and {n - 1} (got {row!r})")
        return int(row)

    @one_thread
    def _apply_edit(self, edited, what: str, event: list) -> dict:
        """Swap in ``edited.dataset`` as the training set, re-solving only the margins it changed."""
        from ..analysis.editing import update_margins
        from ..margins import MarginResult

        n, solved = len(self.train), np.zeros(0, np.int64)
        if self.margins is not None:
            m = self.margins
            train_m, test_m = m.subset(np.arange(n)), m.subset(np.arange(n, len(m)))
            new_train, solved = update_margins(self.model, train_m, edited, model_changed=False,
                                               method="batched", signed=True,
                                               **self._options(self.margins_exact))
            self.margins = MarginResult.concat([new_train, test_m]) if len(test_m) else new_train
        self.train = edited.dataset
        self.trainer.set_train_data(self.train)
        self.data_version += 1
        self.events.append([self.trainer.global_step, *event])
        self._follow_selection(edited)
        self.last_edit = {"what": what, "rows": np.flatnonzero(edited.changed).tolist(),
                          "solved": int(len(solved))}
        return self.last_edit

    def _follow_selection(self, edited):
        """Keep the selected training sample selected at its new row (dropped if it was deleted)."""
        sel = self.selection
        if sel is None or sel["split"] != "train":
            return
        rows = np.flatnonzero(edited.source == sel["row"])
        if not len(rows):
            self.selection = None
            return
        sel["row"] = int(rows[0])
        self._solve_selection()

    def delete_nearest(self, x, y, max_distance: float | None = None) -> int | None:
        """Delete the training sample nearest to (x, y) (a shift-click) if it lies within ``max_distance``
        (default: 6 % of the plot's width); returns its row, or None when no sample is that near."""
        from ..data.edit import delete_points, nearest_row

        x, y = self._xy(x, y)
        radius = PICK_RADIUS * self._span() if max_distance is None else max_distance
        row = nearest_row(self.train, [x, y], max_distance=radius)
        if row is None:
            return None
        self._apply_edit(delete_points(self.train, [row]), "delete", ["delete", [row]])
        return row

    def _delete_row(self, row):  # replay of a "delete" event
        from ..data.edit import delete_points

        self._apply_edit(delete_points(self.train, [self._check_row(row)]), "delete", ["delete", [row]])

    def move_point(self, row, x, y) -> dict:
        """Move training sample ``row`` to (x, y); only its margin is re-solved."""
        from ..data.edit import move_points

        row, (x, y) = self._check_row(row), self._xy(x, y)
        self.move_row = None
        return self._apply_edit(move_points(self.train, [row], [[x, y]]), "move", ["move", [row, x, y]])

    def brush(self, x, y, cls, n: int = BRUSH_POINTS) -> dict:
        """Add ``n`` points of class ``cls`` scattered around (x, y) (a brush stroke); only their margins
        are solved. The positions are drawn from the data seed and the edit count, and kept in the run's
        events, so a link replays the same points."""
        x, y = self._xy(x, y)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 50:
            raise SessionError(f"brush points n must be a whole number between 1 and 50 (got {n!r})")
        rng = np.random.default_rng([self.settings.effective_data_seed, self.data_version])
        P = np.array([x, y]) + BRUSH_RADIUS * self._span() * rng.standard_normal((int(n), 2))
        return self._brush_points(P[:, 0].tolist(), P[:, 1].tolist(), cls)

    def _brush_points(self, xs, ys, cls) -> dict:
        from ..data.edit import add_points

        cls = int(cls) if isinstance(cls, (int, np.integer)) and not isinstance(cls, bool) else cls
        if not isinstance(cls, int) or not 0 <= cls < self.n_classes:
            raise SessionError(f"class must be between 0 and {self.n_classes - 1} (got {cls!r})")
        if len(self.train) + len(xs) > MAX_TRAIN:
            raise SessionError(f"at most {MAX_TRAIN} training samples; clear some or press Reset")
        P = np.column_stack([xs, ys])
        return self._apply_edit(add_points(self.train, P, cls), "brush", ["brush", [list(xs), list(ys), cls]])

    def clear_points(self) -> dict:
        """Delete every training sample (then paint new ones with the brush)."""
        from ..data.edit import delete_points

        return self._apply_edit(delete_points(self.train, np.arange(len(self.train))), "clear", ["clear", []])

    EDIT_EVENTS = {"delete": _delete_row, "move": move_point, "brush": _brush_points,
                   "clear": clear_points}
