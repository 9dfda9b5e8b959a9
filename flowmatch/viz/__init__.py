"""Flow and error pictures.

- `flowmatch.viz.color` (numpy and OpenCV only, fast, bit-exact): `flow_to_color` (the Middlebury colour
  coding), `color_wheel`, `error_map` (KITTI-style error bins), `make_panel` / `save_panel` (a plain grid of
  frame, flow, ground truth and error, what evaluation writes per frame).
- `flowmatch.viz.figures` (matplotlib, imported on first use with the Agg canvas, so no display is needed):
  `legend_wheel`, `flow_figure` (flow colours with a colour-wheel legend inset and/or quiver arrows),
  `error_figure` (error map with a colour bar and the EPE printed on it), `side_by_side`
  (frame | flow | error with titles); write any of them with `flowmatch.io.write_image`.
Every picture is uint8 H×W×3 RGB; flows are H×W×2 (pixels, x then y) in any layout `flowmatch.image.as_flow`
takes.
"""
from __future__ import annotations

from .color import (ERROR_COLORS, ERROR_EDGES, WHEEL_SEGMENTS, color_wheel, error_map, flow_to_color, make_panel,
                    save_panel)
from .figures import error_figure, flow_figure, legend_box, legend_wheel, side_by_side

__all__ = ["ERROR_COLORS", "ERROR_EDGES", "WHEEL_SEGMENTS", "color_wheel", "error_map", "flow_to_color",
           "make_panel", "save_panel", "error_figure", "flow_figure", "legend_box", "legend_wheel",
           "side_by_side"]
