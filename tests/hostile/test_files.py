"""Hostile image, flow and checkpoint files: refused with a named error before any big allocation."""
import pytest

from _cases import check
from _runner import run_cases

SETUP = r"""
import importlib, json, os, struct, tempfile, warnings, zlib
import numpy as np, torch, cv2
from flowmatch import io
from flowmatch.checkpoint import load_checkpoint, save_checkpoint
from flowmatch.estimator import FlowEstimator
warnings.simplefilter("ignore")
T = tempfile.mkdtemp(prefix="hostile_files_")
rng = np.random.default_rng(0)
IMG = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)

def put(name, data):
    p = os.path.join(T, name)
    with open(p, "wb") as fh:
        fh.write(data)
    return p

def enc(ext, img=IMG, params=()):
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok
    return bytearray(buf.tobytes())

def jpeg_claiming(w, h, progressive=False):
    data = enc(".jpg", params=(cv2.IMWRITE_JPEG_PROGRESSIVE, 1) if progressive else ())
    marker = b"\xff\xc2" if progressive else b"\xff\xc0"
    i = data.index(marker)
    data[i + 5:i + 7] = struct.pack(">H", h)
    data[i + 7:i + 9] = struct.pack(">H", w)
    return bytes(data)

def bmp_claiming(w, h):
    data = enc(".bmp")
    data[18:22] = struct.pack("<i", w)
    data[22:26] = struct.pack("<i", h)
    return bytes(data)

def webp_vp8x_claiming(w, h):
    # RIFF/WEBP with an extended (VP8X) header whose canvas is w×h, then the small VP8 frame
    vp8 = enc(".webp", params=(cv2.IMWRITE_WEBP_QUALITY, 80))
    frame = bytes(vp8[12:])
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + frame
    return b"RIFF" + struct.pack("<I", len(body)) + body

def webp_vp8_claiming(w, h):
    data = enc(".webp", params=(cv2.IMWRITE_WEBP_QUALITY, 80))
    assert data[12:16] == b"VP8 "
    data[26:28] = struct.pack("<H", w & 0x3FFF)
    data[28:30] = struct.pack("<H", h & 0x3FFF)
    return bytes(data)

def tiff_claiming(w, h):
    data = enc(".tiff")
    assert data[:2] == b"II"
    ifd = struct.unpack("<I", data[4:8])[0]
    n = struct.unpack("<H", data[ifd:ifd + 2])[0]
    for k in range(n):
        e = ifd + 2 + 12 * k
        tag, typ = struct.unpack("<HH", data[e:e + 4])
        if tag in (256, 257):
            val = w if tag == 256 else h
            if typ == 3:
                data[e + 8:e + 10] = struct.pack("<H", min(val, 65535))
            else:
                data[e + 8:e + 12] = struct.pack("<I", val)
    return bytes(data)

def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

def png_of(w, h, depth=8, ctype=2, rows=None):
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)
    raw = rows if rows is not None else b""
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")

def flownets_state():
    return load_checkpoint(importlib.import_module("flowmatch._paths").shipped_weights("flownets"))

def raw_safetensors(meta, tensors=None):
    from safetensors.torch import save_file
    p = os.path.join(T, f"raw{len(os.listdir(T))}.safetensors")
    save_file(tensors or {"model/x": torch.zeros(1)}, p, metadata=meta)
    return p

def as_user(fn):
    # root reads any file; drop to "nobody" for the call so that permissions apply
    os.setegid(65534); os.seteuid(65534)
    try:
        return fn()
    finally:
        os.seteuid(0); os.setegid(0)
"""

BAD = {
    # image decoders: declared dimensions checked before decoding
    "jpeg_631b_claims_30000": "io.read_image(put('big.jpg', jpeg_claiming(30000, 30000)))",
    "jpeg_progressive_claims_30000": "io.read_image(put('bigp.jpg', jpeg_claiming(30000, 30000, True)))",
    "jpeg_claims_0": "io.read_image(put('zero.jpg', jpeg_claiming(0, 16)))",
    "jpeg_named_png_read_flow": "io.read_flow(put('bigjpg.png', jpeg_claiming(30000, 30000)))",
    "jpeg_truncated_header": "io.read_image(put('trunc.jpg', bytes(enc('.jpg')[:20])))",
    "bmp_claims_30000": "io.read_image(put('big.bmp', bmp_claiming(30000, 30000)))",
    "bmp_claims_negative": "io.read_image(put('neg.bmp', bmp_claiming(-5, 2**31 - 1)))",
    "webp_vp8x_claims_2_24": "io.read_image(put('big.webp', webp_vp8x_claiming(2**24, 2**24)))",
    "webp_vp8_claims_16383": "io.read_image(put('big8.webp', webp_vp8_claiming(16383, 16383)))",
    "tiff_claims_30000": "io.read_image(put('big.tiff', tiff_claiming(30000, 30000)))",
    "png_claims_30000": "io.read_image(put('big.png', png_of(30000, 30000)))",
    "png_8bit_read_flow": "io.read_flow(put('gray8.png', png_of(4000, 4000, 8, 0, b'\\x00' * 4001 * 4000)))",
    "png_over_pixel_limit": "os.environ['FLOWMATCH_MAX_IMAGE_PIXELS'] = '100'\ntry:\n    io.read_image(put('limit.png', bytes(enc('.png'))))\nfinally:\n    del os.environ['FLOWMATCH_MAX_IMAGE_PIXELS']",
    "pnm_claims_huge": "io.read_image(put('big.ppm', b'P6\\n30000 30000\\n255\\n' + bytes(100)))",
    "hdr_format_refused": "io.read_image(put('x.hdr', b'#?RADIANCE\\nFORMAT=32-bit_rle_rgbe\\n\\n-Y 30000 +X 30000\\n' + bytes(64)))",
    "sunras_claims_huge": "io.read_image(put('x.ras', struct.pack('>8I', 0x59a66a95, 30000, 30000, 24, 100, 1, 0, 0) + bytes(100)))",
    "empty_image": "io.read_image(put('empty.png', b''))",
    "random_bytes_image": "io.read_image(put('rand.jpg', rng.integers(0, 255, 500, dtype=np.uint8).tobytes()))",
    # flow files
    "flo_claims_huge": "io.read_flow(put('big.flo', struct.pack('<fii', 202021.25, 2**30, 2**30) + bytes(64)))",
    "jpeg_named_flo": "io.read_flow(put('x.flo', jpeg_claiming(30000, 30000)))",
    "jpeg_named_pfm": "io.read_flow(put('x.pfm', jpeg_claiming(30000, 30000)))",
    "pfm_claims_huge": "io.read_flow(put('big.pfm', b'PF\\n100000 100000\\n-1.0\\n' + bytes(64)))",
    "flo_unreadable": "p = put('locked.flo', struct.pack('<fii', 202021.25, 1, 1) + bytes(8)); os.chmod(p, 0)\nas_user(lambda: io.read_flow(p))",
    "pfm_unreadable": "p = put('locked.pfm', b'PF\\n1 1\\n-1.0\\n' + bytes(12)); os.chmod(p, 0)\nas_user(lambda: io.read_flow(p))",
    "png_unreadable": "p = put('locked.png', bytes(enc('.png'))); os.chmod(p, 0)\nas_user(lambda: io.read_image(p))",
    "flo_is_directory": "os.makedirs(os.path.join(T, 'd.flo'), exist_ok=True)\nio.read_flow(os.path.join(T, 'd.flo'))",
    # writers: nothing silently lost
    "write_uint16_jpg_saturates": "io.write_image(os.path.join(T, 'w16.jpg'), (IMG.astype(np.uint16) * 257))",
    "write_uint16_bmp_saturates": "io.write_image(os.path.join(T, 'w16.bmp'), (IMG.astype(np.uint16) * 257))",
    "write_uint16_webp_saturates": "io.write_image(os.path.join(T, 'w16.webp'), (IMG.astype(np.uint16) * 257))",
    "write_flo_2e9_valid": "io.write_flow(os.path.join(T, 'big.flo'), np.full((4, 4, 2), 2e9, np.float32))",
    # checkpoints: config, dtypes, finiteness before building a model
    "ckpt_width_4_tiny": "p = os.path.join(T, 'w4.safetensors'); save_checkpoint(p, 'flownets', {'width': 4.0}, {})\nFlowEstimator.from_checkpoint(p, 'flownets')",
    "ckpt_width_huge": "p = os.path.join(T, 'w1e6.safetensors'); save_checkpoint(p, 'flownetc', {'width': 1e6}, {})\nFlowEstimator.from_checkpoint(p, 'flownetc')",
    "ckpt_width_negative": "p = os.path.join(T, 'wneg.safetensors'); save_checkpoint(p, 'flownets', {'width': -1.0}, {})\nFlowEstimator.from_checkpoint(p, 'flownets')",
    "ckpt_width_string": "p = os.path.join(T, 'wstr.safetensors'); save_checkpoint(p, 'flownets', {'width': 'wide'}, {})\nFlowEstimator.from_checkpoint(p, 'flownets')",
    "ckpt_patchbatch_width_huge": "p = os.path.join(T, 'pbw.safetensors'); save_checkpoint(p, 'patchbatch', {'width': 1000.0}, {})\nimportlib.import_module('flowmatch.pipelines.patchbatch.network').load_descriptor_model(p)",
    "ckpt_bool_weights": "c = flownets_state(); p = os.path.join(T, 'bool.safetensors')\nsave_checkpoint(p, c.kind, c.config, {k: (v != 0) for k, v in c.model.items()})\nFlowEstimator.from_checkpoint(p, 'flownets')",
    "ckpt_int8_weights": "c = flownets_state(); p = os.path.join(T, 'i8.safetensors')\nsave_checkpoint(p, c.kind, c.config, {k: v.to(torch.int8) for k, v in c.model.items()})\nFlowEstimator.from_checkpoint(p, 'flownets')",
    "ckpt_f64_weights": "c = flownets_state(); p = os.path.join(T, 'f64.safetensors')\nsave_checkpoint(p, c.kind, c.config, {k: (v.double() if v.is_floating_point() else v) for k, v in c.model.items()})\nFlowEstimator.from_checkpoint(p, 'flownets')",
    "ckpt_nan_weights": "c = flownets_state(); p = os.path.join(T, 'nan.safetensors')\nm = {k: v.clone() for k, v in c.model.items()}; k0 = next(k for k, v in m.items() if v.is_floating_point()); m[k0].view(-1)[0] = float('nan')\nsave_checkpoint(p, c.kind, c.config, m)\nFlowEstimator.from_checkpoint(p, 'flownets')",
    "ckpt_inf_weights_load": "c = flownets_state(); p = os.path.join(T, 'inf.safetensors')\nm = {k: v.clone() for k, v in c.model.items()}; k0 = next(k for k, v in m.items() if v.is_floating_point()); m[k0].view(-1)[-1] = float('inf')\nsave_checkpoint(p, c.kind, c.config, m)\nload_checkpoint(p)",
    "ckpt_meta_null": "load_checkpoint(raw_safetensors({'flowmatch': 'null'}))",
    "ckpt_meta_list": "load_checkpoint(raw_safetensors({'flowmatch': '[1, 2]'}))",
    "ckpt_meta_not_json": "load_checkpoint(raw_safetensors({'flowmatch': '{not json'}))",
    "ckpt_config_not_dict": "load_checkpoint(raw_safetensors({'flowmatch': json.dumps({'format': 1, 'kind': 'flownets', 'config': [1, 2]})}))",
    "ckpt_config_deep": "load_checkpoint(raw_safetensors({'flowmatch': '{\"format\": 1, \"kind\": \"flownets\", \"config\": {\"a\": ' + '[' * 100000 + ']' * 100000 + '}}'}))",
    "ckpt_extra_deep": "x = []\nfor _ in range(100):\n    x = {'__list__': [x]}\nload_checkpoint(raw_safetensors({'flowmatch': json.dumps({'format': 1, 'kind': 'flownets', 'config': {}, 'extra': x})}))",
    "ckpt_kind_not_str": "load_checkpoint(raw_safetensors({'flowmatch': json.dumps({'format': 1, 'kind': 5, 'config': {}})}))",
    "ckpt_extra_bad_tensor_ref": "load_checkpoint(raw_safetensors({'flowmatch': json.dumps({'format': 1, 'kind': 'flownets', 'config': {}, 'extra': {'__tensor__': 'extra/99'}})}))",
    "ckpt_extra_bad_dict": "load_checkpoint(raw_safetensors({'flowmatch': json.dumps({'format': 1, 'kind': 'flownets', 'config': {}, 'extra': {'__dict__': [[1]]}})}))",
    "ckpt_header_len_huge": "load_checkpoint(put('hdr.safetensors', struct.pack('<Q', 2**60) + b'{}'))",
    "ckpt_random_bytes": "load_checkpoint(put('rand.safetensors', rng.integers(0, 255, 300, dtype=np.uint8).tobytes()))",
    "ckpt_missing": "load_checkpoint(os.path.join(T, 'nope.safetensors'))",
    "ckpt_from_pretrained_bogus": "FlowEstimator.from_pretrained('bogus')",
}

GOOD = {
    "ok_small_jpeg_reads": "assert io.read_image(put('ok.jpg', bytes(enc('.jpg')))).shape == (16, 16, 3)",
    "ok_progressive_jpeg_reads": "assert io.read_image(put('okp.jpg', bytes(enc('.jpg', params=(cv2.IMWRITE_JPEG_PROGRESSIVE, 1))))).shape == (16, 16, 3)",
    "ok_bmp_reads": "assert io.read_image(put('ok.bmp', bytes(enc('.bmp')))).shape == (16, 16, 3)",
    "ok_webp_reads": "assert io.read_image(put('ok.webp', bytes(enc('.webp')))).shape == (16, 16, 3)",
    "ok_tiff_reads": "assert io.read_image(put('ok.tiff', bytes(enc('.tiff')))).shape == (16, 16, 3)",
    "ok_pgm_reads": "assert io.read_image(put('ok.pgm', bytes(enc('.pgm', IMG[..., 0])))).shape == (16, 16)",
    "ok_png16_reads": "assert io.read_image(put('ok16.png', bytes(enc('.png', IMG.astype(np.uint16) * 257)))).dtype == np.uint16",
    "ok_write_uint16_png_roundtrip": "p = os.path.join(T, 'w16.png'); img = IMG.astype(np.uint16) * 257; io.write_image(p, img)\nassert (io.read_image(p) == img).all()",
    "ok_shipped_weights_load": "FlowEstimator.from_pretrained('flownets')",
}
CASES = {**BAD, **GOOD}


@pytest.fixture(scope="module")
def outcomes():
    return run_cases(CASES, SETUP, case_timeout=60)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_file(outcomes, name):
    check(name, outcomes[name])
