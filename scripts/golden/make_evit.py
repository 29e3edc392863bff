#!/usr/bin/python3
"""Golden references for EViT (Liang et al., ICLR 2022), made with the released code (youweiliang/evit).

Imports the released evit.py (its own timm-0.4.12-style ViT: EViT, Block, Attention; helpers.complement_idx)
from the repository given by --released, with timm (and torchprofile, imported by helpers.py but unused here)
stood in by timm_shim. Builds EViT with DeiT-Ti dimensions (the repository registers only DeiT-S/B shrink
models; their schedule is used: keep rate `base_keep_rate` at blocks drop_loc = (3, 6, 9), 1 elsewhere,
evit.py:660-667 and main.py:47-54), loads /work/shared/models/deit_tiny_patch16_224 with strict=True, and runs
the released forward in eval mode on the four golden images. The kept indices come from the released code
(forward(..., get_idx=True)); each reducing block's output is [CLS, kept tokens in the order of idx, fused
token] (evit.py:264), which gives cluster_of_token: the fused token is one group holding every token not kept
(and, when a later block fuses an earlier fused token again, all of its members).

Writes tests/golden/evit.safetensors in the golden layout (<setting>.logits [4,1000] f32,
<setting>.tokens_per_layer [12] i64, <setting>.cluster_of_token [4,12,197] i64, -1 = pruned without fusion)
plus __metadata__ (settings JSON with the exact per-block keep rates and kept counts, released commit, input
sha256; the images themselves are `input` of the shared golden file).

Checks (exit 1 when one fails):
  * shim  EViT with keep rate 1 everywhere reproduces the shared golden `none` logits (timm-equivalent).
  * spec  an independent re-implementation of /work/scratch/specs/evit.md on vit_ref (no released code)
          gives the same tokens, partitions, and logits within 1e-4 of max |logit|; it reports each image's
          smallest decision gap (CLS attention of the last kept vs the first fused token).

Run:  /usr/bin/python3 scripts/golden/make_evit.py --released /work/scratch/youweiliang+evit
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
sys.path.insert(0, os.path.join(HERE, "..", "pyref"))
import timm_shim  # noqa: E402
import vit_ref    # noqa: E402
from golden_common import (SHARED_GOLDEN, SHARED_MODEL, canonical, differing, rel_err,  # noqa: E402
                           shared_input_ref,
                           write_golden)  # noqa: E402

DROP_LOC = (3, 6, 9)          # main.py --drop_loc default; evit.py deit_*_shrink_base default
SETTINGS = {
    "evit_0.8": {"base_keep_rate": 0.8, "fuse_token": True},        # ~ ToMe r=8 MACs
    "evit_0.7": {"base_keep_rate": 0.7, "fuse_token": True},        # the paper's / README's default
    "evit_0.5": {"base_keep_rate": 0.5, "fuse_token": True},        # ~ ToMe r=16 MACs
    "evit_0.7_nofuse": {"base_keep_rate": 0.7, "fuse_token": False},  # inattentive tokens dropped
}


def keep_rates(base, depth=12, drop_loc=DROP_LOC):
    rates = [1] * depth
    for loc in drop_loc:
        rates[loc] = base
    return rates

# ----------------------------------------------------------------------------- released code


def load_released(root):
    timm_shim.install()
    timm_shim.stub("torchprofile", profile_macs=None)   # helpers.py imports it (MAC counting only)
    root = os.path.abspath(root)
    if root not in sys.path:
        sys.path.insert(0, root)
    return timm_shim.import_released(root, "evit")


def released_model(evit, model_dir, rates, fuse):
    cfg = vit_ref.read_config(model_dir)["model_args"]
    model = evit.EViT(img_size=cfg["img_size"], patch_size=cfg["patch_size"], embed_dim=cfg["embed_dim"],
                      depth=cfg["depth"], num_heads=cfg["num_heads"], mlp_ratio=cfg["mlp_ratio"],
                      qkv_bias=cfg["qkv_bias"], keep_rate=tuple(rates), fuse_token=fuse)
    sd = vit_ref.load_state_dict(os.path.join(model_dir, "model.safetensors"))
    model.load_state_dict(sd, strict=True)
    return model.eval()


def run_released(model, x, fuse):
    """Released forward (keep_rate=None: each block's own rate, as main.py --eval does). Returns logits,
    cluster [B, L, N0], tokens per block, kept count (left_tokens) per block."""
    B = x.shape[0]
    n0 = model.patch_embed.num_patches + 1
    owner = torch.arange(n0).expand(B, n0).clone()
    clusters, tokens, kept = [], [], []

    def hook(_module, inp, out):
        nonlocal owner
        n = inp[0].shape[1]
        x_out, _, idx = out
        if idx is not None:
            left = idx.shape[1]
            pos = torch.full((B, n), 1 + left if fuse else -1, dtype=torch.long)
            pos[:, 0] = 0
            pos.scatter_(1, idx + 1, torch.arange(1, left + 1).expand(B, left).contiguous())
            owner = torch.where(owner >= 0, pos.gather(1, owner.clamp(min=0)), owner)
            kept.append(left)
        else:
            kept.append(None)
        clusters.append(owner.clone())
        tokens.append(x_out.shape[1])

    handles = [blk.register_forward_hook(hook) for blk in model.blocks]
    try:
        with torch.no_grad():
            logits, _ = model(x, None, None, True)
    finally:
        for h in handles:
            h.remove()
    return logits, torch.stack(clusters, dim=1), tokens, kept

# ----------------------------------------------------------------------------- specification re-implementation


def spec_forward(model, x, rates, fuse):
    """EViT inference as specified, on a plain vit_ref model."""
    B = x.shape[0]
    with torch.no_grad():
        t = model.patch_embed(x)
        t = torch.cat([model.cls_token.expand(B, -1, -1), t], dim=1) + model.pos_embed
        n0 = t.shape[1]
        owner = torch.arange(n0).expand(B, n0).clone()
        clusters, tokens, gaps = [], [], []
        for l, blk in enumerate(model.blocks):
            at = blk.attn
            n, c = t.shape[1], t.shape[2]
            qkv = at.qkv(blk.norm1(t)).reshape(B, n, 3, at.num_heads, c // at.num_heads).permute(2, 0, 3, 1, 4)
            p = ((qkv[0] @ qkv[1].transpose(-2, -1)) * at.scale).softmax(dim=-1)
            t = t + at.proj((p @ qkv[2]).transpose(1, 2).reshape(B, n, c))
            gap = torch.full((B,), float("inf"))
            k = math.ceil(rates[l] * (n - 1)) if rates[l] < 1 else n - 1
            if k != n - 1:
                a = p[:, :, 0, 1:].mean(dim=1)                     # [B, n-1] CLS attention, head mean
                a_sorted, order = a.sort(dim=1, descending=True)
                gap = a_sorted[:, k - 1] - a_sorted[:, k]
                top, rest = order[:, :k], order[:, k:]
                patches = t[:, 1:]
                keep = patches.gather(1, top[..., None].expand(B, k, c))
                parts = [t[:, :1], keep]
                if fuse:                                          # CLS-attention-weighted sum, not normalised
                    w = a.gather(1, rest)
                    parts.append((patches.gather(1, rest[..., None].expand(B, rest.shape[1], c))
                                  * w[..., None]).sum(dim=1, keepdim=True))
                t = torch.cat(parts, dim=1)
                pos = torch.full((B, n), k + 1 if fuse else -1, dtype=torch.long)
                pos[:, 0] = 0
                for b in range(B):
                    pos[b, top[b] + 1] = torch.arange(1, k + 1)
                owner = torch.where(owner >= 0, pos.gather(1, owner.clamp(min=0)), owner)
            t = t + blk.mlp(blk.norm2(t))
            clusters.append(owner.clone())
            tokens.append(t.shape[1])
            gaps.append(gap)
        logits = model.head(model.norm(t)[:, 0])
    return logits, torch.stack(clusters, dim=1), tokens, torch.stack(gaps, dim=1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--released", required=True, help="EViT repository root (youweiliang/evit)")
    p.add_argument("--model", default=SHARED_MODEL)
    p.add_argument("--golden", default=SHARED_GOLDEN)
    p.add_argument("--out", default=os.path.join(HERE, "..", "..", "tests", "golden", "evit.safetensors"))
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)

    g, gmeta = vit_ref.read_safetensors(a.golden)
    x = torch.from_numpy(g["input"])
    evit = load_released(a.released)
    ok = True

    model = released_model(evit, a.model, [1] * 12, True)
    logits, _, tokens, _ = run_released(model, x, True)
    err = rel_err(logits, torch.from_numpy(g["none.logits"]))
    good = err < 1e-4 and tokens == [197] * 12
    ok &= good
    print(f"shim: released EViT with keep rate 1 vs golden none: rel={err:.2e} -> {'ok' if good else 'FAIL'}")

    tensors, settings_meta, gaps_meta = {}, {}, {}
    for name, s in SETTINGS.items():
        rates = keep_rates(s["base_keep_rate"])
        model = released_model(evit, a.model, rates, s["fuse_token"])
        logits, cluster, tokens, kept = run_released(model, x, s["fuse_token"])
        ref_model, _ = vit_ref.load_model(a.model)
        s_logits, s_cluster, s_tokens, s_gap = spec_forward(ref_model, x, rates, s["fuse_token"])
        err = rel_err(s_logits, logits)
        bad = differing(s_cluster.numpy(), cluster.numpy())
        good = s_tokens == tokens and not bad and err < 1e-4 and torch.isfinite(logits).all()
        ok &= bool(good)
        print(f"{name}: kept (left_tokens) {kept}\n{'':{len(name) + 2}}tokens {tokens}  "
              f"top1 {logits.argmax(-1).tolist()}\n{'':{len(name) + 2}}spec: tokens "
              f"{'match' if s_tokens == tokens else 'DIFFER'}, partitions "
              f"{'match' if not bad else f'DIFFER at {bad[:6]}'}, logits rel={err:.2e}, smallest decision gap "
              f"per image {[f'{v:.1e}' for v in s_gap.min(dim=1).values.tolist()]} -> {'ok' if good else 'FAIL'}")
        tensors[f"{name}.logits"] = logits.float().numpy()
        tensors[f"{name}.tokens_per_layer"] = np.array(tokens, dtype=np.int64)
        tensors[f"{name}.cluster_of_token"] = cluster.numpy().astype(np.int64)
        settings_meta[name] = {"method": "evit", "base_keep_rate": s["base_keep_rate"],
                               "drop_loc": list(DROP_LOC), "keep_rate": rates, "fuse_token": s["fuse_token"],
                               "kept_tokens": kept, "prop_attn": False,
                               "fused_token": ("sum over non-kept tokens of x * CLS attention (head mean), "
                                               "appended last" if s["fuse_token"] else None)}
        gaps_meta[name] = [[float(f"{v:.3e}") for v in row] for row in s_gap.tolist()]

    released = os.path.abspath(a.released)
    meta = {
        "model": os.path.basename(os.path.normpath(a.model)),
        "images": gmeta.get("images", ""),
        "input": shared_input_ref(g),
        "settings": json.dumps(settings_meta),
        "released": json.dumps({"repo": "youweiliang/evit", "path": "evit.py",
                                "commit": timm_shim.git_head(released),
                                "entry": "evit.EViT(DeiT-Ti dims, keep_rate per block, fuse_token) + "
                                         "forward(x, None, None, get_idx=True), eval mode"}),
        "decision_gap": json.dumps(gaps_meta),
        "generator": "scripts/golden/make_evit.py (timm stand-in: scripts/golden/timm_shim.py)",
        "torch": torch.__version__, "threads": str(torch.get_num_threads()),
        "spec": "see the opening comment of core/reduce/evit.cpp (from /work/scratch/specs/evit.md)",
    }
    if not ok:
        print("not writing: a check failed")
        return 1
    write_golden(a.out, tensors, meta, vit_ref.write_safetensors, vit_ref.read_safetensors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
