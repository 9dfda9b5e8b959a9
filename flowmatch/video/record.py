"""The settings record of an output folder: `<out>/video_settings.json`.

Flow files are named by frame index only, so a folder must say what computed them.  The record holds
every setting that determines a flow file's content: the method and its effective options (the
method's defaults merged with the given ones), every, start, the file format, the device type, the
frame size and the input's identity (source.input_identity).  `end` is not recorded (it only says
how far to go, so a run can be extended), nor are the visualisation settings (the video is redrawn).

Policy: a folder whose record differs, or that holds flow files but no record, is refused with
InputError naming the differences, with or without --resume; nothing is recomputed or deleted
(the files there are the user's).  The record is created exclusively (os.link of a complete
temporary), so two writers starting together with different settings cannot both win.
"""
from __future__ import annotations

import json
import os
from typing import Any

from ..errors import InputError
from .._settings import settings_differences
from .source import OUTPUT_NAME

RECORD = "video_settings.json"
VERSION = 1
_NOT_OUTPUT = ("verbose",)  # options that change what is printed, not the flow


def settings(method: str, options: dict[str, Any], every: int, start: int, fmt: str, device: str,
             size: tuple[int, int], identity: dict[str, Any]) -> dict[str, Any]:
    """The record's settings as plain JSON values (what a later run compares)."""
    from ..methods.registry import get_method

    effective = {**get_method(method).defaults, **options}
    effective = {k: v for k, v in sorted(effective.items()) if k not in _NOT_OUTPUT}
    s = {"method": method, "options": effective, "every": every, "start": start, "format": fmt,
         "device": device.split(":")[0], "frame_size": list(size), "input": identity}
    return json.loads(json.dumps(s, default=repr))  # tuples -> lists, odd values -> their repr


def flow_files(out: str) -> list[str]:
    """Names in `out` that are flow outputs (flow_NNNNNN.flo / .png)."""
    try:
        return sorted(f for f in os.listdir(out) if OUTPUT_NAME.match(f))
    except OSError:
        return []


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return settings_differences(old, new, {"input": "a different file or folder than the one the flows were computed from"})


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the settings record {path!r} ({exc}); delete it only if the flow files "
                         f"beside it may be discarded") from None
    if not isinstance(data, dict) or not isinstance(data.get("settings"), dict):
        raise InputError(f"{path!r} is not a flowmatch video settings record")
    return data["settings"]


def claim(out: str, current: dict[str, Any], scratch: str) -> None:
    """Make sure `out` holds flows of `current` settings only: create the record, or check it.

    scratch: a private folder for the record's temporary (the writer's workspace).
    Raises InputError when the folder's flows were (or may have been) computed otherwise."""
    path = os.path.join(out, RECORD)
    fix = (f"write to another --out folder, or delete the flow files and {RECORD} in {out!r} to start over")
    if not os.path.exists(path):
        existing = flow_files(out)
        if existing:
            raise InputError(f"--out {out!r} holds {len(existing)} flow file(s) ({existing[0]}, ...) but no {RECORD}, "
                             f"so the settings that computed them are unknown; {fix}")
        tmp = os.path.join(scratch, RECORD)
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"flowmatch_video_record": VERSION, "settings": current}, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # fails if another writer created it first: then compare with theirs
            return
        except FileExistsError:
            pass
        except OSError:  # file systems without hard links: exclusive create instead
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w", encoding="utf-8") as fh, open(tmp, encoding="utf-8") as src:
                    fh.write(src.read())
                return
    diffs = _differences(_read(path), current)
    if diffs:
        raise InputError(f"--out {out!r} holds flows computed with other settings ({'; '.join(diffs)}); "
                         f"they would be mixed with new ones; {fix}")
