import os
import sys

import pytest
from hypothesis import HealthCheck, settings

from flowmatch._paths import real_data_dir

# tests in sub-folders (mirroring the package) import the shared dataset-layout builders tests/layouts.py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

settings.register_profile("default", deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=400,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running test, excluded from `make test` (run `make test-all`)")
    config.addinivalue_line("markers", "cuda_emulated: runs the CUDA kernel source on the CPU through "
                            "csrc/cuda_emulation/cuda_host.h (`pytest -m cuda_emulated`)")
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skipped without one; `make gpu-check`)")


@pytest.fixture(scope="session")
def real_data():
    """Path of ../shared/data/real; the test is skipped when the samples are absent."""
    path = real_data_dir()
    if path is None:
        pytest.skip("real sample data (../shared/data/real) not present")
    return path
