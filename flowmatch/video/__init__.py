"""Flow over a video (or a folder of frames), streamed in constant memory.

    from flowmatch.video import video_flow
    summary = video_flow("clip.mp4", "flows/", method="dis-medium", viz="flow.mp4", every=2)

Frames are decoded one at a time through imageio-ffmpeg (never the whole video in memory).  With
`every=K` the frames start, start+K, start+2K, ... (before `end`) are used and the flow is computed
between consecutive used frames; the flow from frame i is written to <out>/flow_{i:06d}.flo (or
.png, KITTI 16-bit).  What it guarantees:

- Overlapped: decoding, the flow method and writing run as a bounded three-stage pipeline
  (pipeline.py), so a run goes at nearly the method's own pairs/s.
- Honest resume: <out>/video_settings.json records the settings that determine the files (record.py);
  a folder of other settings is refused (InputError), never mixed or silently reused.
- Safe outputs: every file appears complete or not at all; outputs that are the input are refused
  (OutputConflictError), and flows are never read back as frames; temporaries are per writer and
  removed by their owner, or by another writer only when provably stale (workspace.py); SIGTERM is
  handled like Ctrl-C.
- A truncated input (fewer frames than its header claims) is reported: VideoSummary.truncated and a
  warning on the "flowmatch.video" logger (`flowmatch video` exits with code 3).
- Under torchrun the pairs are split across ranks in contiguous blocks, into one output folder.

Modules: source (decoding, input identity, test clips), record (settings record), workspace
(temporaries, SIGTERM), pipeline (the stages), progress (bar with ETA), run (video_flow).
"""
from __future__ import annotations

from .run import VideoSummary, flow_path, video_flow
from .source import FRAME_EXTENSIONS, frame_source, input_identity, write_test_video
from .workspace import Terminated

__all__ = ["video_flow", "VideoSummary", "flow_path", "frame_source", "input_identity", "write_test_video",
           "FRAME_EXTENSIONS", "Terminated"]
