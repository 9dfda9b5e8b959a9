"""Annotated flow pictures drawn with matplotlib: a colour-wheel legend, quiver arrows, an error map with a
colour bar and the EPE, and side-by-side panels.

matplotlib is imported on first use and drives its Agg canvas directly (no pyplot, no global backend, no
display).  Pixels that carry data are exact: the flow colours (`flow_to_color`), the error bins
(`error_map`) and the legend wheel are pasted unresampled (`Figure.figimage`), so a figure pixel equals
the plain colour coding; matplotlib draws what it draws better than hand-made code: arrows, text, the
colour bar.  Layout, in pixels from the top-left corner:

- `flow_figure`: H×W, the flow's own size; the legend wheel at `legend_box(H, W)` (top-right).
- `error_figure`: (TITLE_PX + H) × (W + BAR_PX); the map at rows TITLE_PX.., columns 0..W-1, the EPE in the
  title band above it, the colour bar to its right.
- `side_by_side`: tiles frame | flow [| error], each H×W at row TITLE_PX and column k·(W + GAP_PX), a title
  above each, and BAR_PX more on the right for the colour bar when there is an error tile.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError, MethodUnavailableError
from ..image import as_flow, as_image, as_mask
from .color import ERROR_COLORS, ERROR_EDGES, error_map, flow_to_color

DPI = 100
TITLE_PX = 26   # title band above a tile
GAP_PX = 6      # between tiles
BAR_PX = 84     # colour bar and its labels, right of an error map
_FONT_PX = 13
_LEGEND_MIN_PX = 16 + 2 * 2 + _FONT_PX  # the smallest wheel, its margins and its label


def _matplotlib() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MethodUnavailableError("flowmatch.viz figures need matplotlib (pip install matplotlib)") from exc
    return Figure, FigureCanvasAgg


class _Canvas:
    """A white figure of exactly width × height pixels; positions in pixels from the top-left corner."""

    def __init__(self, width: int, height: int) -> None:
        figure, self._agg = _matplotlib()
        # +1e-3: Agg truncates the figure's float size to whole pixels
        self.fig = figure(figsize=((width + 1e-3) / DPI, (height + 1e-3) / DPI), dpi=DPI, facecolor="white")
        self.w, self.h = width, height

    def image(self, img: np.ndarray, x: int, y: int, zorder: float) -> None:
        # figimage pastes pixels unresampled; zorder < 0 puts it under axes (arrows), > 0 over them
        self.fig.figimage(img, xo=x, yo=self.h - y - img.shape[0], origin="upper", zorder=zorder)

    def axes(self, x: float, y: float, w: float, h: float) -> Any:
        return self.fig.add_axes((x / self.w, 1 - (y + h) / self.h, w / self.w, h / self.h))

    def text(self, x: float, y: float, s: str, **kw: Any) -> None:
        self.fig.text(x / self.w, 1 - y / self.h, s, fontsize=_FONT_PX * 72 / DPI, **kw)

    def render(self) -> np.ndarray:
        canvas = self._agg(self.fig)
        canvas.draw()
        return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[: self.h, : self.w, :3])


def _auto_radius(flow: np.ndarray, ok: np.ndarray) -> float:
    """flow_to_color's default scale: the largest valid |flow| (1 px when all are zero)."""
    mags = np.hypot(flow[..., 0], flow[..., 1])[ok]
    return float(mags.max()) if mags.size and mags.max() > 0 else 1.0


def _finite_mask(f: np.ndarray, valid: Any) -> np.ndarray:
    return as_mask(valid, f.shape[:2], default=True) & np.isfinite(f).all(axis=2)


def legend_wheel(size: int) -> np.ndarray:
    """The colour-wheel legend: uint8 size×size×3, white outside the disk.  The pixel at offset (dx, dy)
    from the centre has the colour flow_to_color gives a flow (dx, dy) when the disk radius (size/2 px)
    is the full-saturation radius: direction from the centre = direction of motion (y down)."""
    if not (isinstance(size, (int, np.integer)) and 4 <= size <= 4096):
        raise InputError(f"legend size must be an integer number of pixels in [4, 4096], got {size!r}")
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    radial = np.stack([xx - c, yy - c], axis=2)
    wheel = flow_to_color(radial, max_radius=size / 2.0)
    wheel[np.hypot(radial[..., 0], radial[..., 1]) > size / 2.0] = 255
    return wheel


def legend_box(height: int, width: int) -> tuple[int, int, int]:
    """Where flow_figure puts the legend wheel in an H×W picture: (x, y, size) in pixels, top-left corner
    of the wheel and its side (a quarter of the smaller side, 16 to 128 px).  InputError when the picture
    is too small for the wheel and its label (under _LEGEND_MIN_PX on a side)."""
    size = int(np.clip(min(height, width) // 4, 16, 128))
    margin = max(2, size // 12)
    if size + 2 * margin + _FONT_PX > min(height, width):
        raise InputError(f"a {width}×{height} picture is too small for a colour-wheel legend "
                         f"({_LEGEND_MIN_PX} px at least on each side)")
    return width - size - margin, margin, size


def _draw_flow_tile(cv: _Canvas, f: np.ndarray, ok: np.ndarray, x: int, y: int, radius: float,
                    legend: bool, quiver: int | None, quiver_scale: float | None,
                    background: np.ndarray | None) -> None:
    h, w = f.shape[:2]
    cv.image(flow_to_color(f, radius, ok) if background is None else background, x, y, zorder=-2)
    if quiver is not None:
        _draw_quiver(cv, f, ok, x, y, quiver, quiver_scale)
    if legend:
        lx, ly, size = legend_box(h, w)
        cv.image(legend_wheel(size), x + lx, y + ly, zorder=1)
        # right-aligned at the wheel's right edge, so that the label stays inside the tile
        cv.text(x + lx + size, y + ly + size + 1, f"{radius:.3g} px", ha="right", va="top", zorder=3,
                bbox=dict(boxstyle="square,pad=0.1", facecolor="white", edgecolor="none", alpha=0.8))


def _draw_quiver(cv: _Canvas, f: np.ndarray, ok: np.ndarray, x: int, y: int, step: int,
                 scale: float | None) -> None:
    """Arrows on a grid of every `step`-th pixel (first at step // 2), tail at the pixel, none where the
    flow is zero or invalid.  Length = scale · flow; scale None: the longest arrow is `step` px."""
    h, w = f.shape[:2]
    ys, xs = np.mgrid[step // 2:h:step, step // 2:w:step]
    u, v, keep = f[ys, xs, 0], f[ys, xs, 1], ok[ys, xs]
    keep &= np.hypot(u, v) > 1e-6
    ax = cv.axes(x, y, w, h)
    ax.set_axis_off()
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)  # image rows go down
    if not keep.any():
        return
    if scale is None:
        scale = step / float(np.hypot(u[keep], v[keep]).max())
    width = max(1.0, step / 12)
    ax.quiver(xs[keep], ys[keep], u[keep], v[keep], angles="xy", scale_units="xy", scale=1.0 / scale,
              pivot="tail", units="dots", width=width, headwidth=3.5, headlength=4, headaxislength=3.5,
              minlength=0, color="black", edgecolor="white", linewidth=0.5)


def _check_quiver(quiver: Any, quiver_scale: Any) -> None:
    if quiver is not None and not (isinstance(quiver, (int, np.integer)) and not isinstance(quiver, bool)
                                   and 1 <= quiver <= 4096):
        raise InputError(f"quiver step must be an integer number of pixels in [1, 4096], got {quiver!r}")
    if quiver_scale is not None and not (isinstance(quiver_scale, (int, float)) and np.isfinite(quiver_scale)
                                         and quiver_scale > 0):
        raise InputError(f"quiver_scale must be a positive number, got {quiver_scale!r}")


def flow_figure(flow: Any, valid: Any = None, max_radius: float | None = None, legend: bool = True,
                quiver: int | None = None, quiver_scale: float | None = None, background: Any = None) -> np.ndarray:
    """The flow colours (flow_to_color) with a colour-wheel legend inset and/or quiver arrows.

    Args:
        flow: H×W×2 (or any layout as_flow takes), pixels, x first.  valid: optional H×W bool.
        max_radius: |flow| in pixels at full saturation (None: the largest valid one); the legend says it.
        legend: draw the wheel in the top-right corner (legend_box); needs 24 px or more.
        quiver: draw arrows on every quiver-th pixel (None: none); quiver_scale: arrow length per pixel
            of flow (1 = true length; None: the longest arrow is `quiver` px long).
        background: optional H×W[×3] frame drawn under the arrows instead of the flow colours.
    Returns:
        uint8 H×W×3 RGB, the flow's size.
    """
    f = as_flow(flow, "flow", np.float64)
    ok = _finite_mask(f, valid)
    _check_quiver(quiver, quiver_scale)
    radius = _auto_radius(f, ok) if max_radius is None else max_radius
    base = None
    if background is not None:
        base = np.clip(np.rint(as_image(background, "background")), 0, 255).astype(np.uint8)
        if base.shape[:2] != f.shape[:2]:
            raise InputError(f"background is {base.shape[1]}×{base.shape[0]} but flow is {f.shape[1]}×{f.shape[0]}")
    flow_to_color(f[:1, :1], radius)  # checks max_radius before drawing anything
    h, w = f.shape[:2]
    cv = _Canvas(w, h)
    _draw_flow_tile(cv, f, ok, 0, 0, radius, legend, quiver, quiver_scale, base)
    return cv.render()


def _epe_text(f: np.ndarray, g: np.ndarray, ok: np.ndarray) -> str:
    from ..evaluation.metrics import epe

    if not ok.any():
        return "EPE n/a (no valid pixel)"
    return f"EPE {epe(np.where(ok[..., None], f, 0.0), g, ok):.3f} px"


def _draw_error_tile(cv: _Canvas, f: np.ndarray, g: np.ndarray, ok: np.ndarray, x: int, y: int) -> None:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import BoundaryNorm, ListedColormap

    h, w = f.shape[:2]
    cv.image(error_map(f, g, ok), x, y, zorder=-2)
    cv.text(x + w / 2, y - TITLE_PX / 2, f"error: {_epe_text(f, g, ok)}", ha="center", va="center")
    # the KITTI bins as equal steps; the open last bin (>= 48 px) gets a finite top edge labelled inf
    edges = [*ERROR_EDGES[:-1], 2 * ERROR_EDGES[-2]]
    norm = BoundaryNorm(edges, len(ERROR_COLORS))
    mappable = ScalarMappable(norm=norm, cmap=ListedColormap(ERROR_COLORS / 255.0))
    cax = cv.axes(x + w + 8, y + 2, 12, max(h - 4, 4))
    bar = cv.fig.colorbar(mappable, cax=cax, spacing="uniform", ticks=edges)
    bar.ax.set_yticklabels([f"{e:g}" for e in ERROR_EDGES[:-1]] + ["inf"], fontsize=10 * 72 / DPI)
    bar.set_label("EPE (px)", fontsize=_FONT_PX * 72 / DPI)


def _prepare_error(flow: Any, gt: Any, valid: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f, g = as_flow(flow, "flow", np.float64), as_flow(gt, "gt", np.float64)
    if f.shape != g.shape:
        raise InputError(f"flow and gt differ in size: {f.shape[1]}×{f.shape[0]} vs {g.shape[1]}×{g.shape[0]}")
    return f, g, _finite_mask(f, valid) & np.isfinite(g).all(axis=2)


def error_figure(flow: Any, gt: Any, valid: Any = None) -> np.ndarray:
    """The KITTI-style error map (error_map) with a colour bar of its bins (pixels) and the mean EPE over
    the valid pixels printed above it.  flow, gt: H×W×2, pixels, x first; valid: optional H×W bool.
    Returns uint8 (TITLE_PX + H) × (W + BAR_PX) × 3; the map is at rows TITLE_PX.., columns 0..W-1."""
    f, g, ok = _prepare_error(flow, gt, valid)
    h, w = f.shape[:2]
    cv = _Canvas(w + BAR_PX, TITLE_PX + h)
    _draw_error_tile(cv, f, g, ok, 0, TITLE_PX)
    return cv.render()


def side_by_side(img1: Any, flow: Any, gt: Any = None, valid: Any = None, max_radius: float | None = None,
                 legend: bool = True, quiver: int | None = None, quiver_scale: float | None = None) -> np.ndarray:
    """frame | flow [| error] side by side, a title above each tile.

    The flow tile is flow_figure's (legend, arrows); with gt, the error tile is error_figure's (colour bar,
    EPE over `valid`).  max_radius None: the largest valid |gt| (|flow| without gt), so that predictions
    of one scene share a scale.  img1: H×W[×3] frame; flow, gt: H×W×2 pixels, x first; valid: H×W bool.
    Returns uint8 (TITLE_PX + H) × (n·W + (n-1)·GAP_PX [+ BAR_PX]) × 3, n = 2 or 3 tiles."""
    f = as_flow(flow, "flow", np.float64)
    frame = np.clip(np.rint(as_image(img1, "img1")), 0, 255).astype(np.uint8)
    if frame.shape[:2] != f.shape[:2]:
        raise InputError(f"img1 is {frame.shape[1]}×{frame.shape[0]} but flow is {f.shape[1]}×{f.shape[0]}")
    _check_quiver(quiver, quiver_scale)
    h, w = f.shape[:2]
    f_ok = np.isfinite(f).all(axis=2)
    if gt is not None:
        f, g, ok = _prepare_error(f, gt, valid)
        radius = _auto_radius(g, as_mask(valid, g.shape[:2], default=True) & np.isfinite(g).all(axis=2)) \
            if max_radius is None else max_radius
    else:  # valid masks the flow itself
        f_ok &= as_mask(valid, (h, w), default=True)
        radius = _auto_radius(f, f_ok) if max_radius is None else max_radius
    flow_to_color(f[:1, :1], radius)  # checks max_radius
    n = 3 if gt is not None else 2
    cv = _Canvas(n * w + (n - 1) * GAP_PX + (BAR_PX if gt is not None else 0), TITLE_PX + h)
    cv.image(frame, 0, TITLE_PX, zorder=-2)
    cv.text(w / 2, TITLE_PX / 2, "frame", ha="center", va="center")
    x = w + GAP_PX
    _draw_flow_tile(cv, f, f_ok, x, TITLE_PX, radius, legend, quiver, quiver_scale, None)
    cv.text(x + w / 2, TITLE_PX / 2, "flow" if legend else f"flow (full colour at {radius:.3g} px)",
            ha="center", va="center")
    if gt is not None:
        _draw_error_tile(cv, f, g, ok, 2 * (w + GAP_PX), TITLE_PX)
    return cv.render()
