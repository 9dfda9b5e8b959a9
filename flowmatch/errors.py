"""The exceptions flowmatch raises.  Every message names the offending path or argument and,
where there is one, the fix.  Each type also derives from the matching built-in exception so
that `except ValueError` (or `FileNotFoundError`, `RuntimeError`) keeps working."""
from __future__ import annotations


class FlowmatchError(Exception):
    """Base class of every flowmatch error."""


class InputError(FlowmatchError, ValueError):
    """A bad argument: wrong shape, dtype, device, a non-finite value, an impossible parameter."""


class FlowFormatError(FlowmatchError, ValueError):
    """A flow, image or mask file that cannot be read or written in the expected format."""


class DatasetLayoutError(FlowmatchError, FileNotFoundError):
    """A dataset folder that is missing or does not have the official layout."""


class ExtensionNotBuiltError(FlowmatchError, RuntimeError):
    """A compiled op was called but flowmatch._C is not built (or failed to load)."""


class CheckpointError(FlowmatchError, ValueError):
    """A checkpoint or weights file of the wrong model, shape or format."""


class MethodUnavailableError(FlowmatchError, RuntimeError):
    """A flow method that cannot run here (missing extension, weights, package or GPU)."""


class OutputConflictError(FlowmatchError, ValueError):
    """An output path that would overwrite an input (or another output of the same command)."""
