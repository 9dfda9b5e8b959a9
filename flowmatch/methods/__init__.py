"""Flow methods by name: the project's own and classical baselines (see registry.py)."""
from .registry import Method, best_method, flow, get_method, methods, register

__all__ = ["Method", "best_method", "flow", "get_method", "methods", "register"]
