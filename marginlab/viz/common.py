"""Small numeric helpers shared by the figure builders: class palette, evaluation grids, class-region
encoding and decision-boundary extraction from logits on a grid. Numpy only (no plotly, no torch)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CLASS_COLORS",
    "class_color",
    "mix",
    "Grid",
    "make_grid",
    "region_levels",
    "region_colorscale",
    "boundary_segments",
    "segments_xy",
    "REGION_LEVELS",
]

# plotly's qualitative "Plotly" palette (the same order as plotly express defaults and viz.embedding)
CLASS_COLORS = (
    "#636EFA",
    "#EF553B",
    "#00CC96",
    "#AB63FA",
    "#FFA15A",
    "#19D3F3",
    "#FF6692",
    "#B6E880",
    "#FF97FF",
    "#FECB52",
)

# confidence levels per class in the region heatmap: z = class * REGION_LEVELS + level (small ints keep the
# JSON payload of a live heatmap update small)
REGION_LEVELS = 6


def class_color(k: int) -> str:
    return CLASS_COLORS[int(k) % len(CLASS_COLORS)]


def mix(color: str, weight: float, other: str = "#FFFFFF") -> str:
    """``weight`` of ``color`` blended with ``other`` (hex colours), as ``rgb(...)``."""
    a = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)
    b = np.array([int(other[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)
    r, g, bl = np.round(weight * a + (1 - weight) * b).astype(int)
    return f"rgb({r},{g},{bl})"


@dataclass(frozen=True)
class Grid:
    """A regular evaluation grid: cell centres ``xs`` (nx,), ``ys`` (ny,); ``points`` (ny*nx, 2) float32 in
    row-major order (row = y index), so ``values.reshape(ny, nx)`` lines up with a heatmap's ``z``."""

    xs: np.ndarray
    ys: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.ys), len(self.xs)

    @property
    def points(self) -> np.ndarray:
        gx, gy = np.meshgrid(self.xs, self.ys)
        return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)

    @property
    def x_range(self) -> tuple[float, float]:
        dx = (self.xs[1] - self.xs[0]) / 2 if len(self.xs) > 1 else 0.5
        return float(self.xs[0] - dx), float(self.xs[-1] + dx)

    @property
    def y_range(self) -> tuple[float, float]:
        dy = (self.ys[1] - self.ys[0]) / 2 if len(self.ys) > 1 else 0.5
        return float(self.ys[0] - dy), float(self.ys[-1] + dy)

    def cell_center(self, x: float, y: float) -> tuple[float, float]:
        """Centre of the cell containing (x, y) (clamped to the grid)."""
        j = int(np.clip(np.rint((x - self.xs[0]) / (self.xs[1] - self.xs[0])), 0, len(self.xs) - 1))
        i = int(np.clip(np.rint((y - self.ys[0]) / (self.ys[1] - self.ys[0])), 0, len(self.ys) - 1))
        return float(self.xs[j]), float(self.ys[i])


def make_grid(X, *, resolution: int = 60, pad: float = 0.15, square: bool = True) -> Grid:
    """A grid covering the points ``X`` (n, 2) with a margin of ``pad`` times the span on every side.

    ``square=True`` gives both axes the same span, so a plot with equal axis scaling shows Euclidean
    distances (and nearest-boundary segments) undistorted."""
    X = np.asarray(X, dtype=np.float64).reshape(-1, 2)
    if len(X) == 0:
        X = np.array([[-1.0, -1.0], [1.0, 1.0]])
    lo, hi = X.min(axis=0), X.max(axis=0)
    span = np.maximum(hi - lo, 1e-6)
    if square:
        span = np.full(2, span.max())
    mid = (lo + hi) / 2
    half = span * (0.5 + pad)
    res = max(int(resolution), 2)
    xs = np.linspace(mid[0] - half[0], mid[0] + half[0], res).astype(np.float32)
    ys = np.linspace(mid[1] - half[1], mid[1] + half[1], res).astype(np.float32)
    return Grid(xs, ys)


def region_levels(logits, shape, *, discrete: bool = False) -> np.ndarray:
    """Class-region encoding of grid ``logits`` (ny*nx, K): int8 ``class * REGION_LEVELS + level`` where
    ``level`` grows with the softmax confidence of the predicted class; shape ``shape`` (ny, nx).
    ``discrete=True`` draws every region at full colour (the predicted class only, TensorFlow Playground's
    "discretize output")."""
    L = np.asarray(logits, dtype=np.float64)
    K = L.shape[1]
    cls = L.argmax(axis=1)
    if discrete:
        return (cls * REGION_LEVELS + REGION_LEVELS - 1).astype(np.int8).reshape(shape)
    Z = L - L.max(axis=1, keepdims=True)
    conf = 1.0 / np.exp(Z).sum(axis=1)  # softmax probability of the argmax class
    conf = (conf - 1.0 / K) / (1.0 - 1.0 / K)  # 0 at a tie of all classes, 1 when certain
    level = np.clip((conf * REGION_LEVELS).astype(np.int64), 0, REGION_LEVELS - 1)
    return (cls * REGION_LEVELS + level).astype(np.int8).reshape(shape)


def region_colorscale(n_classes: int, *, light: float = 0.18, strong: float = 0.55) -> list:
    """A discrete colourscale for :func:`region_levels` with ``zmin=-0.5``, ``zmax=K*REGION_LEVELS-0.5``:
    each class gets ``REGION_LEVELS`` bands from pale (uncertain) to stronger (confident)."""
    n = n_classes * REGION_LEVELS
    scale = []
    for v in range(n):
        k, level = divmod(v, REGION_LEVELS)
        w = light + (strong - light) * level / max(REGION_LEVELS - 1, 1)
        c = mix(class_color(k), w)
        scale += [[v / n, c], [(v + 1) / n, c]]
    return scale


def boundary_segments(grid: Grid, logits) -> tuple[np.ndarray, np.ndarray]:
    """Decision boundary of grid ``logits`` (ny*nx, K) as line pieces: ``(x, y)`` float32 arrays holding
    ``x0, x1, NaN`` per piece (plotly draws NaN as a break).

    Where the predicted class changes between neighbouring grid nodes, the crossing of the two classes'
    logits is located by linear interpolation; inside each grid cell the crossings are joined (two
    crossings: one piece; three or four, e.g. where three classes meet: each joined to their centre)."""
    ny, nx = grid.shape
    L = np.asarray(logits, dtype=np.float64).reshape(ny, nx, -1)
    C = L.argmax(axis=2)
    xs, ys = grid.xs.astype(np.float64), grid.ys.astype(np.float64)

    def crossing(a_idx, b_idx, La, Lb):
        # d = f_a - f_b is >= 0 at node a and <= 0 at node b; t locates its zero on the edge
        a, b = C[a_idx], C[b_idx]
        d0 = np.take_along_axis(La, a[..., None], 2)[..., 0] - np.take_along_axis(La, b[..., None], 2)[..., 0]
        d1 = np.take_along_axis(Lb, a[..., None], 2)[..., 0] - np.take_along_axis(Lb, b[..., None], 2)[..., 0]
        den = d0 - d1
        t = np.where(np.abs(den) > 1e-12, d0 / np.where(den == 0, 1, den), 0.5)
        return a != b, np.clip(t, 0.0, 1.0)

    # horizontal edges (i, j)-(i, j+1): shape (ny, nx-1); vertical edges (i, j)-(i+1, j): (ny-1, nx)
    h_on, h_t = crossing((slice(None), slice(0, -1)), (slice(None), slice(1, None)), L[:, :-1], L[:, 1:])
    v_on, v_t = crossing((slice(0, -1), slice(None)), (slice(1, None), slice(None)), L[:-1], L[1:])
    hx = xs[None, :-1] + h_t * (xs[1:] - xs[:-1])[None, :]
    hy = np.broadcast_to(ys[:, None], h_on.shape)
    vx = np.broadcast_to(xs[None, :], v_on.shape)
    vy = ys[:-1, None] + v_t * (ys[1:] - ys[:-1])[:, None]

    # the four edges of cell (i, j): bottom, top, left, right -> (ny-1, nx-1, 4)
    on = np.stack([h_on[:-1], h_on[1:], v_on[:, :-1], v_on[:, 1:]], axis=-1)
    ex = np.stack([hx[:-1], hx[1:], vx[:, :-1], vx[:, 1:]], axis=-1)
    ey = np.stack([hy[:-1], hy[1:], vy[:, :-1], vy[:, 1:]], axis=-1)
    count = on.sum(axis=-1)

    pieces = []
    two = count == 2
    if two.any():
        o, px, py = on[two], ex[two], ey[two]
        first = np.argmax(o, axis=1)
        second = 3 - np.argmax(o[:, ::-1], axis=1)
        r = np.arange(len(o))
        pieces.append(
            np.stack(
                [np.stack([px[r, first], py[r, first]], 1), np.stack([px[r, second], py[r, second]], 1)],
                axis=1,
            )
        )
    many = count >= 3
    if many.any():
        o, px, py = on[many], ex[many], ey[many]
        cx = (px * o).sum(1) / o.sum(1)
        cy = (py * o).sum(1) / o.sum(1)
        cell, edge = np.nonzero(o)
        pieces.append(
            np.stack(
                [np.stack([px[cell, edge], py[cell, edge]], 1), np.stack([cx[cell], cy[cell]], 1)], axis=1
            )
        )
    if not pieces:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    seg = np.concatenate(pieces)
    return segments_xy(seg[:, 0], seg[:, 1])


def segments_xy(start, end, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Line pieces from ``start`` (m, 2) to ``end`` (m, 2) as plotly ``x, y`` arrays (float32: sent as
    binary) with NaN breaks; rows with a NaN end are left out."""
    start = np.asarray(start, dtype=np.float64).reshape(-1, 2)
    end = np.asarray(end, dtype=np.float64).reshape(-1, 2)
    keep = np.isfinite(start).all(1) & np.isfinite(end).all(1)
    start, end = start[keep], end[keep]
    m = len(start)
    x = np.full((m, 3), np.nan)
    y = np.full((m, 3), np.nan)
    x[:, 0], x[:, 1] = start[:, 0], end[:, 0]
    y[:, 0], y[:, 1] = start[:, 1], end[:, 1]
    return x.ravel().astype(dtype), y.ravel().astype(dtype)
