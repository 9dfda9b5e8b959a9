"""Devices the op tests run on: the CPU, and CUDA when torch sees a GPU (those cases carry the `gpu`
marker, which `make gpu-check` selects)."""
import pytest
import torch

DEVICES = ["cpu"] + ([pytest.param("cuda", marks=pytest.mark.gpu)] if torch.cuda.is_available() else [])
over_devices = pytest.mark.parametrize("device", DEVICES)
