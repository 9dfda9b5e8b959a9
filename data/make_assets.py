"""Regenerates the small demo assets in this folder (deterministic; run from the repository root):

    python data/make_assets.py

- data/pair/img1.png, img2.png, flow.flo, occlusion.png: a 128×96 flying-shapes pair from
  flowmatch.data.synthetic (seed 2024) with its exact flow (pixels, x first) and occlusion mask;
  `flowmatch demo --input data/pair` runs on it, and `flowmatch flow data/pair/img1.png
  data/pair/img2.png -o out.flo` is a quick first try.
- data/demo_clip.mp4: 12 frames 127×95 (odd size on purpose) of a texture moving by (2, 1) px per
  frame, for `flowmatch video data/demo_clip.mp4 --out flows --viz flows.mp4`.
"""
from __future__ import annotations

import os

from flowmatch import io
from flowmatch.data.synthetic import generate_pair
from flowmatch.video import write_test_video

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    p = generate_pair(96, 128, 2024, max_motion=8.0)
    pair = os.path.join(HERE, "pair")
    io.write_image(os.path.join(pair, "img1.png"), p.img1)
    io.write_image(os.path.join(pair, "img2.png"), p.img2)
    io.write_flo(os.path.join(pair, "flow.flo"), p.flow)
    io.write_mask(os.path.join(pair, "occlusion.png"), p.occlusion)
    write_test_video(os.path.join(HERE, "demo_clip.mp4"), frames=12, height=95, width=127, motion=(2.0, 1.0))


if __name__ == "__main__":
    main()
