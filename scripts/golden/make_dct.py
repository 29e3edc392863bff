#!/usr/bin/python3
"""Golden reference for DCT token reduction made with the released code of PiToMe's repository (algo/dct).

Runs the released DCT patch (algo/dct/patch/deit.py + patch/timm.py + merge.py, imported at run time from
--released, never copied) on vit_ref's deit_tiny through the timm 0.4.12 stand-in (timm_shim.py), on the
four preprocessed golden images (tensor `input` of the shared golden file), exactly as the repository's
image-classification evaluation wires it (main_ic.py get_model: patch.deit(model), then model.ratio = RATIO).
Writes tests/golden/dct.safetensors in the shared golden layout, WITHOUT cluster_of_token: every output token
of a DCT step is a linear combination of all patch tokens, so there is no partition to compare.

  dct_<ratio>.logits            [4,1000] f32
  dct_<ratio>.tokens_per_layer  [12] i64   tokens leaving each block (the same for every image)
  unit.input                    [2,51,16] f32  seeded N(0,1) tokens (CLS + 50 "patch" tokens, 16 channels)
  unit.<ratio>.output           [2,1+K,16] f32  the released dc_transform of unit.input (K = ceil(50*ratio)):
                                a transform-level check that the logits cannot give (see below)
  __metadata__                  model, images, settings (JSON: ratio, kept coefficients per block, released
                                commit, how far independent re-implementations land from the logits)

Why the unit vectors: the released transform rounds its output to float16, which turns float32 differences of
one ulp before it (another BLAS kernel, another DCT algorithm) into float16 differences of one ulp after it.
Perturbing the tokens entering every transform by 1e-7 relative moves the logits by 1.0-1.9e-4 of max |logit|,
as much as leaving the float16 rounding out (1.7-3.0e-4): the logits alone cannot tell a faithful port from
one without the rounding, the unit vectors can (every element of a faithful output is a float16 value and
within one float16 ulp of the stored one; the released FFT arithmetic reproduces them bit for bit).

Checks run every time (nothing is written if one fails):
  - ratio 1.0 (every block skips the transform) must reproduce the shared golden `none` logits;
  - the released dc_transform is replaced by an independent implementation of the released float32 FFT
    arithmetic (spec_fft_dc_transform, the op sequence a C++/ATen port uses): same tokens per layer and
    logits within 1e-4 (in practice bit-identical), and it must equal the released transform bit for bit on the
    unit vectors;
  - for information, the metadata also records how far a float64 DCT-matrix implementation lands, with and
    without the float16 rounding (1.4-1.6e-4 and 1.7-3.0e-4 of max |logit|).

Run:  /usr/bin/python3 scripts/golden/make_dct.py --released /work/scratch/hchautran+PiToMe
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import timm_shim  # noqa: E402  (also puts scripts/pyref on sys.path)
import vit_ref  # noqa: E402
from golden_common import SHARED_GOLDEN, SHARED_MODEL, base_metadata, rel_err  # noqa: E402

DEFAULT_RATIOS = [0.95, 0.9, 0.86]   # GMACs near ToMe r=8, r=13, r=16; 0.9 and 0.95 are in the repo's eval loop


def dct_matrix(n):
    """Orthonormal DCT-II matrix [n,n] in float64: X_k = s_k sum_m cos(pi (2m+1) k / (2n)) x_m,
    s_0 = sqrt(1/n), s_k = sqrt(2/n)."""
    m = np.arange(n)[None, :]
    k = np.arange(n)[:, None]
    c = np.cos(np.pi * (2 * m + 1) * k / (2 * n))
    c[0] *= math.sqrt(1.0 / n)
    c[1:] *= math.sqrt(2.0 / n)
    return c


def spec_dc_transform(half):
    """dc_transform as docs/spec describe it, written independently: keep CLS, map the T patch tokens with
    the float64 matrix DCT3_K^T-ortho . DCT2_T-ortho[:K] (K = ceil(T*ratio)), round to float16 (when `half`),
    back to float32, CLS first."""
    def transform(x, ratio=None, class_token=True):
        assert class_token
        t = x.shape[1] - 1
        k = math.ceil(t * ratio)
        m = torch.from_numpy(dct_matrix(k).T @ dct_matrix(t)[:k])             # [K,T] float64
        y = torch.einsum("kt,btc->bkc", m, x[:, 1:].double()).float()
        if half:
            y = y.half().float()
        return torch.cat([x[:, :1], y], dim=1)
    return transform


def _dct2_ortho_fft(x):
    """Orthonormal DCT-II over the last dim of a float32 [R,N] tensor by Makhoul's N-point FFT, with the
    float32 operations in the released order, written from a description of it (not from its code)."""
    n = x.shape[-1]
    v = torch.cat([x[:, 0::2], x[:, 1::2].flip([1])], dim=1)      # evens, then odds reversed
    f = torch.fft.fft(v, dim=1)
    w = -torch.arange(n, dtype=torch.float32)[None, :] * math.pi / (2 * n)
    out = f.real * torch.cos(w) - f.imag * torch.sin(w)
    out[:, 0] /= math.sqrt(n) * 2
    out[:, 1:] /= math.sqrt(n / 2) * 2
    return 2 * out


def _dct3_ortho_fft(c):
    """Inverse of _dct2_ortho_fft (orthonormal DCT-III) over the last dim of float32 [R,N], by an N-point
    inverse FFT, float32 operations in the spec's order."""
    n = c.shape[-1]
    h = c / 2
    h[:, 0] *= math.sqrt(n) * 2
    h[:, 1:] *= math.sqrt(n / 2) * 2
    w = torch.arange(n, dtype=torch.float32)[None, :] * math.pi / (2 * n)
    wr, wi = torch.cos(w), torch.sin(w)
    im = torch.cat([h[:, :1] * 0, -h.flip([1])[:, :-1]], dim=1)    # 0, -h[n-1], ..., -h[1]
    z = torch.complex(h * wr - im * wi, h * wi + im * wr)
    v = torch.fft.ifft(z, dim=1).real
    y = v.new_zeros(v.shape)
    y[:, 0::2] += v[:, :n - n // 2]
    y[:, 1::2] += v.flip([1])[:, :n // 2]
    return y


def spec_fft_dc_transform(x, ratio=None, class_token=True):
    """dc_transform written from the spec with the released float32 FFT arithmetic (the way a C++/ATen port
    would do it): per channel and image, DCT-II over the T patch tokens, keep the first K = ceil(T*ratio)
    coefficients, DCT-III of length K, round to float16, back to float32, CLS first."""
    assert class_token
    b, n, c = x.shape
    t = n - 1
    k = math.ceil(t * ratio)
    rows = x[:, 1:].float().permute(2, 0, 1).reshape(c * b, t)       # one row per (channel, image)
    y = _dct3_ortho_fft(_dct2_ortho_fft(rows)[:, :k])
    y = y.reshape(c, b, k).permute(1, 2, 0).half().float()
    return torch.cat([x[:, :1], y], dim=1)


def run_dct(root, model_dir, x, ratio, transform=None):
    """One forward of the released DCT patch; `transform` replaces the released dc_transform (spec checks).
    Returns (logits, tokens per layer, released total_flop)."""
    deit = timm_shim.import_released(root, "algo.dct.patch.deit")
    dct_timm = sys.modules["algo.dct.patch.timm"]
    model = timm_shim.load_deit(model_dir)
    deit.apply_patch(model)            # main_ic.get_model: defaults (trace_source / prop_attn unused by DCT)
    model.ratio = float(ratio)
    tokens = []
    for blk in model.blocks:
        blk.register_forward_hook(lambda mod, inp, out: tokens.append(int(out.shape[1])))
    released = dct_timm.dc_transform
    if transform is not None:
        dct_timm.dc_transform = transform
    try:
        with torch.no_grad():
            logits, flop = model(x)    # the patched forward returns (logits, total_flop) by default
    finally:
        dct_timm.dc_transform = released
    return logits, tokens, flop


def unit_vectors(root, ratios):
    """unit.input and the released dc_transform of it for each ratio (transform-level golden data)."""
    merge = timm_shim.import_released(root, "algo.dct.merge")
    x = torch.randn(2, 51, 16, generator=torch.Generator().manual_seed(0))
    out = {"unit.input": x}
    for ratio in ratios:
        y = merge.dc_transform(x.clone(), ratio=ratio, class_token=True)
        mine = spec_fft_dc_transform(x.clone(), ratio=ratio)
        assert torch.equal(y, mine), f"spec FFT transform differs from the released one at ratio {ratio}"
        assert torch.equal(y[:, 1:], y[:, 1:].half().float()), "released patch tokens are not float16 values"
        assert torch.equal(y[:, :1], x[:, :1]), "released CLS changed"
        out[f"unit.{ratio:g}.output"] = y
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--released", required=True, help="checkout of hchautran/PiToMe (algo/dct is used)")
    p.add_argument("--model", default=SHARED_MODEL)
    p.add_argument("--golden", default=SHARED_GOLDEN,
                   help="shared golden file: its `input` tensor and image names are used")
    p.add_argument("--out", default=os.path.join(HERE, "..", "..", "tests", "golden", "dct.safetensors"))
    p.add_argument("--ratio", type=float, action="append", help=f"keep ratios (default {DEFAULT_RATIOS})")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    timm_shim.install()

    g, gmeta = vit_ref.read_safetensors(a.golden)
    x = torch.from_numpy(g["input"])

    logits, tokens, _ = run_dct(a.released, a.model, x, 1.0)
    err = rel_err(logits, torch.from_numpy(g["none.logits"]))
    ok = err < 1e-4 and tokens == g["none.tokens_per_layer"].tolist()
    print(f"released DCT patch at ratio 1.0 vs golden none: rel_logit_err={err:.2e} tokens {tokens} "
          f"-> {'ok' if ok else 'FAIL'}")
    if not ok:
        return 1

    commit = timm_shim.git_head(a.released)
    tensors, settings = {}, {}
    for ratio in a.ratio or DEFAULT_RATIOS:
        logits, tokens, flop = run_dct(a.released, a.model, x, ratio)
        fft_logits, spec_tokens, _ = run_dct(a.released, a.model, x, ratio, spec_fft_dc_transform)
        mat_logits, _, _ = run_dct(a.released, a.model, x, ratio, spec_dc_transform(half=True))
        f32_logits, _, _ = run_dct(a.released, a.model, x, ratio, spec_dc_transform(half=False))
        fft_err = rel_err(fft_logits, logits)
        spec_err, f32_err = rel_err(mat_logits, logits), rel_err(f32_logits, logits)
        good = spec_tokens == tokens and fft_err < 1e-4
        name = f"dct_{ratio:g}"
        patch_in = [196] + [t - 1 for t in tokens[:-1]]
        tensors[f"{name}.logits"] = logits.numpy().astype(np.float32)
        tensors[f"{name}.tokens_per_layer"] = np.array(tokens, dtype=np.int64)
        settings[name] = {
            "method": "dct", "ratio": ratio, "prop_attn": False, "partition": False,
            "acts": "after the MLP residual of every block, CLS excluded",
            "patch_tokens_in_per_block": patch_in,
            "coefficients_kept_per_block": [t - 1 for t in tokens],
            "float16_rounding": True,
            "released_total_flop": int(flop),
            "rel_logit_err_spec_fft_float32": float(f"{fft_err:.3e}"),
            "rel_logit_err_float64_matrix_dct_with_fp16": float(f"{spec_err:.3e}"),
            "rel_logit_err_float64_matrix_dct_without_fp16": float(f"{f32_err:.3e}"),
        }
        print(f"{name}: tokens {tokens} top1 {logits.argmax(-1).tolist()}  rel_logit_err of the independent "
              f"implementations: float32 FFT (spec order) {fft_err:.2e}, float64 matrix {spec_err:.2e} with "
              f"fp16 rounding, {f32_err:.2e} without "
              f"-> {'ok' if good else 'FAIL'}")
        if not good:
            return 1
    ratios = a.ratio or DEFAULT_RATIOS
    for name, t in unit_vectors(a.released, ratios).items():
        tensors[name] = t.numpy().astype(np.float32)
    print(f"unit vectors: released dc_transform == spec float32 FFT transform bit for bit at {ratios}")
    meta = base_metadata(a.model, gmeta, "hchautran/PiToMe", commit,
                         ["algo/dct/merge.py", "algo/dct/patch/timm.py", "algo/dct/patch/deit.py"],
                         "scripts/golden/make_dct.py")
    meta.update({
        "settings": json.dumps(settings),
        "unit": json.dumps({"input": "unit.input [2,51,16] f32, torch.randn(generator=manual_seed(0))",
                            "outputs": {f"{r:g}": f"unit.{r:g}.output" for r in ratios},
                            "class_token": True}),
    })
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    vit_ref.write_safetensors(a.out, tensors, meta)
    print(f"wrote {os.path.normpath(a.out)} ({os.path.getsize(a.out)} bytes), released commit {commit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
