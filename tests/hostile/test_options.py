"""Hostile method options and frames through flowmatch.flow: each must give a named error."""
import pytest

from _cases import check
from _runner import run_cases

SETUP = r"""
import importlib, math, warnings
import numpy as np, torch, flowmatch
warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
A = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
B = np.roll(A, 2, axis=1)
def F(method, a=A, b=B, **opt):
    out = flowmatch.flow(a, b, method=method, **opt)
    assert np.isfinite(out).all()
    return out
"""

BAD = {
    # OpenCV Farneback: segfault, ZeroDivisionError, silent all-zero flow
    "farneback_winsize_1e9": "F('farneback', winsize=1000000000)",
    "farneback_winsize_0": "F('farneback', winsize=0)",
    "farneback_iterations_0": "F('farneback', iterations=0)",
    "farneback_poly_sigma_nan": "F('farneback', poly_sigma=float('nan'))",
    "farneback_pyr_scale_0": "F('farneback', pyr_scale=0)",
    "farneback_pyr_scale_1": "F('farneback', pyr_scale=1.0)",
    "farneback_levels_neg": "F('farneback', levels=-3)",
    "farneback_levels_huge": "F('farneback', levels=2**40)",
    "farneback_poly_n_4": "F('farneback', poly_n=4)",
    "farneback_winsize_str": "F('farneback', winsize='abc')",
    "farneback_winsize_float": "F('farneback', winsize=15.5)",
    "farneback_iterations_bool": "F('farneback', iterations=True)",
    "farneback_iterations_huge": "F('farneback', iterations=10**9)",
    # DIS
    "dis_refinement_notabool": "F('dis-fast', variational_refinement='notabool')",
    "dis_refinement_int": "F('dis-fast', variational_refinement=3)",
    "dis_10px_frames": "F('dis-medium', a=A[:10, :10], b=B[:10, :10])",
    "dis_11px_frames": "F('dis-fast', a=A[:11, :30], b=B[:11, :30])",
    # DualTVL1 (run in a worker process)
    "dualtvl1_lambda_nan": "F('dualtvl1', lambda_=float('nan'))",
    "dualtvl1_scales_str": "F('dualtvl1', scales='abc')",
    "dualtvl1_warps_huge": "F('dualtvl1', warps=10**9)",
    "dualtvl1_tau_neg": "F('dualtvl1', tau=-1.0)",
    "dualtvl1_epsilon_inf": "F('dualtvl1', epsilon=float('inf'))",
    "dualtvl1_theta_zero": "F('dualtvl1', theta=0.0)",
    "dualtvl1_isolate_str": "F('dualtvl1', isolate='no')",
    "pcaflow_isolate_str": "F('pcaflow', isolate='yes')",
    # PatchBatch pipeline: C++ widths (int32, float) and work bounds
    "pb_coef_kernel_1e39": "F('patchbatch-fast', coef_kernel=1e39)",
    "pb_nn_2_31": "F('patchbatch-fast', nn=2147483648)",
    "pb_refine_alpha_nan": "F('patchbatch-fast', refine_alpha=float('nan'))",
    "pb_refine_iterations_1e7": "F('patchbatch-fast', refine_iterations=10**7)",
    "pb_iterations_1e9": "F('patchbatch-fast', iterations=10**9)",
    "pb_threads_neg": "F('patchbatch-fast', threads=-1)",
    "pb_threads_str": "F('patchbatch-fast', threads='many')",
    "pb_seed_2_70": "F('patchbatch-fast', seed=2**70)",
    "pb_seed_float": "F('patchbatch-fast', seed=1.5)",
    "pb_consistency_nan": "F('patchbatch-fast', consistency=float('nan'))",
    "pb_cost_quantile_2": "F('patchbatch-fast', cost_quantile=2.0)",
    "pb_pref_th_nan": "F('patchbatch-fast', pref_th=float('nan'))",
    "pb_edge_scale_inf": "F('patchbatch-fast', edge_scale=float('inf'))",
    "pb_edge_sigma_huge": "F('patchbatch-fast', edge_sigma=1e6)",  # OpenCV builds a ~6·sigma kernel
    "pb_edge_sigma_neg": "F('patchbatch-fast', edge_sigma=-1.0)",
    "pb_dis_max_change_nan": "F('patchbatch-fast', dis_max_change=float('nan'))",
    "pb_dis_patch_stride_9": "F('patchbatch-fast', dis_patch_stride=9)",  # OpenCV: heap corruption
    "pb_dis_patch_stride_0": "F('patchbatch-fast', dis_patch_stride=0)",
    "pb_dis_finest_scale_neg": "F('patchbatch-fast', dis_finest_scale=-1)",
    "pb_dis_iterations_huge": "F('patchbatch-fast', dis_iterations=10**7)",
    "pb_pca_dim_0": "F('patchbatch-fast', pca_dim=0)",
    "pb_descriptor_stride_huge": "F('patchbatch-fast', descriptor_stride=10**6)",
    "pb_radius_huge": "F('patchbatch-fast', radius=2**40)",
    "pb_seed_step_huge": "F('patchbatch-fast', seed_step=2**40)",
    "pb_saliency_nan": "F('patchbatch-fast', saliency_th=float('nan'))",
    "pb_refine_str": "F('patchbatch-fast', refine='notabool')",
    "pb_affine_str": "F('patchbatch-fast', affine='x')",
    "pb_half_int": "F('patchbatch-fast', half=2)",
    "pb_subpixel_str": "F('patchbatch-fast', subpixel='no')",
    "pb_verbose_str": "F('patchbatch-fast', verbose='loud')",
    "pb_raw_weight_nan": "F('patchbatch-fast', raw_weight=float('nan'))",
    "pb_precision_bogus": "F('patchbatch-fast', precision='fp8')",
    "pb_descriptor_model_missing": "F('patchbatch-fast', descriptor_model='/nonexistent/w.safetensors')",
    # FlowNet options
    "flownet_scale_zero": "F('flownets', scale=0.0)",
    "flownet_scale_nan": "F('flownets', scale=float('nan'))",
    "flownet_scale_huge": "F('flownets', scale=1e6)",
    "flownet_size_mode_bogus": "F('flownets', size_mode='stretch')",
    "flownet_weights_missing": "F('flownets', weights='/nonexistent/x.safetensors')",
    "flownet_weights_int": "F('flownets', weights=3)",
    # frames
    "ok_frames_bfloat16_torch": "F('farneback', a=torch.rand(3, 48, 64).to(torch.bfloat16), b=torch.rand(3, 48, 64).to(torch.bfloat16))",
    "frames_meta_tensor": "F('farneback', a=torch.empty(3, 48, 64, device='meta'), b=torch.empty(3, 48, 64, device='meta'))",
    "frames_nan": "F('farneback', a=np.full((48, 64, 3), np.nan, np.float32), b=np.zeros((48, 64, 3), np.float32))",
    "frames_object_dtype": "F('farneback', a=np.empty((48, 64, 3), object), b=A)",
    "frames_complex": "F('farneback', a=A.astype(np.complex64), b=A.astype(np.complex64))",
    "frames_bool": "F('farneback', a=A > 5, b=B > 5)",
    "frames_zero_size": "F('farneback', a=A[:0], b=B[:0])",
    "frames_5d": "F('farneback', a=A[None, None], b=B[None, None])",
    "unknown_method": "F('bogus-method')",
    "unknown_option": "F('farneback', wnisize=5)",
    # registry-level
    "device_bogus": "F('farneback', device='tpu')",
    # lower-level entry points
    "edge_cost_map_scale_nan": "from flowmatch.ops.interpolation import edge_cost_map\nr = edge_cost_map(A, scale=float('nan'))\nassert np.isfinite(r).all()",
    "edge_cost_map_sigma_1e6": "from flowmatch.ops.interpolation import edge_cost_map\nedge_cost_map(A, sigma=1e6)",
    "edge_cost_map_euclidean_neg": "from flowmatch.ops.interpolation import edge_cost_map\nedge_cost_map(A, euclidean=-1.0)",
    "saliency_sigma_1e6": "importlib.import_module('flowmatch.pipelines.patchbatch.consistency').saliency(A, sigma=1e6)",
    "from_pretrained_bogus": "from flowmatch.estimator import FlowEstimator\nFlowEstimator.from_pretrained('bogus')",
}

GOOD = {
    # valid settings at the limits still work
    "ok_farneback_defaults": "F('farneback')",
    "ok_farneback_small_winsize": "F('farneback', winsize=3, levels=1, iterations=1, poly_n=7, poly_sigma=1.5)",
    "ok_dis_12px": "F('dis-fast', a=A[:12, :12], b=B[:12, :12])",
    "ok_dis_refinement_false": "F('dis-fast', variational_refinement=False)",
    "ok_dualtvl1": "F('dualtvl1', scales=2, warps=2)",
    "ok_pb_dis_limits": "F('patchbatch-fast', dis_patch_stride=8, dis_finest_scale=10, dis_iterations=1)",
}
CASES = {**BAD, **GOOD}


@pytest.fixture(scope="module")
def outcomes():
    return run_cases(CASES, SETUP, case_timeout=60)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_option(outcomes, name):
    check(name, outcomes[name])
