"""Frames of a playground training run, kept as plain arrays for a replay (an HTML handout)."""

from __future__ import annotations

import numpy as np

__all__ = ["Recorder"]


class Recorder:
    """Keeps at most ``max_frames`` frames of a run: when full, every other frame is dropped and frames are
    taken half as often, so a long run keeps evenly spaced frames from its start to its end.

    A frame holds the step, epoch, loss/accuracy, grid logits (float16: only the argmax and the confidence
    band are drawn) and the margins by histogram group; the samples are stored once per data version."""

    def __init__(self, max_frames: int = 120):
        self.max_frames = int(max_frames)
        self.frames: list[dict] = []
        self.datasets: dict[int, dict] = {}
        self.every = 1
        self._seen = 0

    def clear(self) -> None:
        self.frames, self.datasets, self.every, self._seen = [], {}, 1, 0

    def capture(self, frame: dict, data_version: int, data) -> bool:
        """Store ``frame`` if it is due (returns whether it was); ``data()`` gives the samples when
        ``data_version`` is new."""
        due = self._seen % self.every == 0
        self._seen += 1
        if not due:
            return False
        if data_version not in self.datasets:
            self.datasets[data_version] = data()
        frame = dict(frame, data=data_version)
        frame["logits"] = np.asarray(frame["logits"], dtype=np.float16)
        self.frames.append(frame)
        if len(self.frames) > self.max_frames:
            self.frames = self.frames[::2]
            self.every *= 2
            used = {f["data"] for f in self.frames}
            self.datasets = {k: v for k, v in self.datasets.items() if k in used}
        return True
