"""Flow error metrics and the Sintel / KITTI protocols: the public name of
flowmatch.evaluation.metrics (where the code lives)."""
from .evaluation.metrics import *  # noqa: F401,F403
from .evaluation.metrics import __all__  # noqa: F401
