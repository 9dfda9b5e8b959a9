"""Neural network models: FlowNetS and FlowNetC (flownet.py)."""
from .flownet import FlowNetC, FlowNetS, build_model, count_parameters, load_published_state_dict
from .patchbatch import PatchBatchNet

__all__ = ["FlowNetC", "FlowNetS", "build_model", "count_parameters", "load_published_state_dict", "PatchBatchNet"]
