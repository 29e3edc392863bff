#!/usr/bin/python3
"""Golden reference for MCTF (Multi-criteria Token Fusion with One-step-ahead Attention, Lee, Choi, Kim,
CVPR 2024, arXiv:2403.10030), made with the authors' released code (github.com/mlvlab/MCTF).

The released code is imported from --released at run time (never copied here):
  utils/mctf.py            mctf(), bipartite_soft_matching(), merge_wavg(), merge_source()
  models/SA/MHSA.py        MHSA (its _attn=True / _attn=tensor paths give the one-step-ahead attention)
  models/modules/blocks.py Block_DEIT.forward (merge before attention, merged attention reused)
through scripts/golden/timm_shim.py (blocks.py imports timm.models.layers). The blocks run the released
Block_DEIT.forward and MHSA.forward unchanged; their weights are vit_ref's deit_tiny. Block_DEIT.__init__
is bypassed only because it builds timm's Mlp, which is replaced by vit_ref's identical Mlp (fc1, exact GELU,
fc2; dropouts are identities at eval). The model-level loop mirrors models/deit.py VisionTransformer.forward
(resetInfo, student path, norm, head on the CLS row); the `info` dict is built from mctf_type exactly as
models/deit.py:75-89 does. Source tracing is the released merge_source (mctf_type[2] = trace_source = 1).

Settings written (DeiT-T evaluation script defaults, run/eval_deit_t_mctf.sh, at three strengths, plus
MCTF-Fast, run/eval_deit_t_mctf_fast.sh):
  mctf_r8, mctf_r13, mctf_r16   r_eval = 8 / 13 / 16, activate_layer [1..11],
                                 mctf_type [r,0,1,1,1,1,20,40,1,1,0]
  mctf_fast_0.35                 r_eval = 0.35 (fraction of the non-CLS tokens), activate_layer [3,6,9]
(mctf_type = [r_student, r_teacher_max, trace_source, prop_attn, one_step_ahead, tau_sim, tau_info, tau_size,
bidirection, pooling_type, unused]; the scripts pass trace_source = 0, which changes nothing numerically.)

Checks run every time (exit 1 on failure):
  - the same machinery with use_mctf = False reproduces the shared golden `none` logits (timm-equivalence);
  - an independent implementation of the spec (/work/scratch/specs/mctf.md), written on vit_ref's modules in
    the engine's terms (a destination slot per token, weighted means, merged attention), gives identical
    tokens per layer and partitions and logits within 1e-4 relative, for every setting; it also reports the
    smallest decision gap (near-ties) per setting.

Usage:
  /usr/bin/python3 scripts/golden/make_mctf.py --released /work/scratch/mlvlab+MCTF \
      [--model /work/shared/models/deit_tiny_patch16_224] \
      [--input /work/shared/golden/deit_tiny_merge_reference.safetensors] \
      [--out tests/golden/mctf.safetensors] [--threads 1]
"""
import argparse
import json
import math
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "pyref"))
import timm_shim  # noqa: E402
import vit_ref    # noqa: E402
from golden_common import SHARED_GOLDEN, SHARED_MODEL, canonical  # noqa: E402

warnings.filterwarnings("ignore", message="scatter_reduce\\(\\) is in beta")

ALL = list(range(1, 12))
SETTINGS = {  # name: (r_eval, activate_layer, released script the defaults come from)
    "mctf_r8": (8, ALL, "run/eval_deit_t_mctf.sh with r = 8"),
    "mctf_r13": (13, ALL, "run/eval_deit_t_mctf.sh with r = 13"),
    "mctf_r16": (16, ALL, "run/eval_deit_t_mctf.sh (r = 16, the released DeiT-T default)"),
    "mctf_fast_0.35": (0.35, [3, 6, 9], "run/eval_deit_t_mctf_fast.sh (MCTF-Fast)"),
}
# Fixed part of mctf_type of both DeiT-T scripts: prop_attn, one_step_ahead, tau_sim, tau_info, tau_size,
# bidirection, pooling_type, (unused).
FIXED = [1, 1, 1, 20, 40, 1, 1, 0]

# ----------------------------------------------------------------------------- released code


def import_released(root):
    timm_shim.install()
    mctf_mod = timm_shim.import_released(root, "utils.mctf")
    blocks = timm_shim.import_released(root, "models.modules.blocks")
    mhsa = timm_shim.import_released(root, "models.SA.MHSA")
    return mctf_mod, blocks, mhsa


def make_info(mctf_type, activate, use_mctf=True):
    """models/deit.py:75-89 (names and positions of mctf_type), with num_protected = 1 (CLS, no DIST)."""
    return {"use_mctf": use_mctf, "activate": activate,
            "r_student": mctf_type[0], "r_teacher_max": mctf_type[1], "trace_source": mctf_type[2],
            "prop_attn": mctf_type[3], "one_step_ahead": mctf_type[4], "tau_sim": mctf_type[5],
            "tau_info": mctf_type[6], "tau_size": mctf_type[7], "bidirection": mctf_type[8],
            "pooling_type": mctf_type[9], "num_protected": 1}


class ReleasedMCTF(nn.Module):
    """vit_ref deit_tiny with every block replaced by the released Block_DEIT (released forward and MHSA)."""

    def __init__(self, model, blocks_mod, mhsa_mod, info):
        super().__init__()
        self.vit, self.info = model, info
        self.blocks = nn.ModuleList()
        for i, vb in enumerate(model.blocks):
            blk = blocks_mod.Block_DEIT.__new__(blocks_mod.Block_DEIT)
            nn.Module.__init__(blk)
            dim = vb.norm1.normalized_shape[0]
            blk.norm1 = vb.norm1
            blk.attn = mhsa_mod.MHSA(dim, num_heads=vb.attn.num_heads, qkv_bias=True, info=info)
            blk.attn.qkv, blk.attn.proj = vb.attn.qkv, vb.attn.proj
            blk.drop_path1 = nn.Identity()
            blk.norm2, blk.mlp = vb.norm2, vb.mlp           # vit_ref Mlp = timm Mlp at eval
            blk.drop_path2 = nn.Identity()
            blk.info, blk.layer = info, i
            self.blocks.append(blk)
        self.eval()

    def forward(self, x, r_eval):
        """models/deit.py:161-208 at eval (student path only), recording after every block the token count
        and info['student_source'] (the released merge_source), i.e. which output token holds each original."""
        info = self.info
        info.update(teacher_source=None, student_source=None, teacher_size=None, student_size=None,
                    r_eval=r_eval, r_teacher=0)
        v = self.vit
        x = v.patch_embed(x)
        x = torch.cat((v.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + v.pos_embed
        tokens, clusters = [], []
        for blk in self.blocks:
            x = blk(x, prefix="student_")
            tokens.append(x.shape[1])
            src = info["student_source"]
            if src is None:
                clusters.append(torch.arange(x.shape[1]).expand(x.shape[0], x.shape[1]).clone())
            else:
                assert src.shape[1] == x.shape[1]
                clusters.append(src.argmax(dim=1))           # [B, N0]: row holding original token t
        x = v.norm(x)
        return v.head(x[:, 0]), tokens, torch.stack(clusters, dim=1)

# ----------------------------------------------------------------------------- spec re-implementation


def spec_r(n, r, prefix=1):
    """Tokens fused in an acting block with n tokens entering it (utils/mctf.py:24-26)."""
    if n - r < 10:
        r = n - 10
    r = int((n - prefix) * r) if r < 1 else r
    return min(r, (n - prefix) // 2)


def spec_plan(x, attn, size, r, tau=(1, 20, 40)):
    """The MCTF plan of one block from the spec, in the engine's terms.
    x [B,N,C] block input, attn [B,H,N,N] softmax probabilities, size [B,N] float. Returns
    (dest [B,N] output slot of each token, n_out, gap [B] smallest decision margin)."""
    tau_sim, tau_info, tau_size = tau
    B, N, _ = x.shape
    na, nb = (N + 1) // 2, N // 2
    r1, r2 = r // 2, r - r // 2
    m = x / x.norm(dim=-1, keepdim=True)
    sim = m[:, 0::2] @ m[:, 1::2].transpose(1, 2)                     # [B, na, nb]
    w_sim = ((sim + 1) / 2) ** (1 / tau_sim)
    inv_a = 1 / attn.mean(dim=(1, 2))                                 # [B, N] 1 / attention received
    inv_a = inv_a / inv_a.max(dim=1, keepdim=True).values
    w_info = (inv_a[:, 0::2, None] * inv_a[:, None, 1::2]) ** (1 / tau_info)
    inv_s = 1 / size
    inv_s = inv_s / inv_s.max(dim=1, keepdim=True).values
    w_size = (inv_s[:, 0::2, None] * inv_s[:, None, 1::2]) ** (1 / tau_size)
    score = w_sim * w_info * w_size
    score[:, 0, :] = -math.inf                                        # CLS (A row 0) never fused
    best, best_b = score.max(dim=-1)                                  # step 1: A -> B
    edges = best.argsort(dim=-1, descending=True)
    src, unm = edges[:, :r1], edges[:, r1:].sort(dim=-1).values
    score2 = score.gather(1, unm[..., None].expand(B, na - r1, nb)).transpose(1, 2)   # [B, nb, na-r1]
    best2, best_a = score2.max(dim=-1)                                # step 2: B -> remaining A
    edges2 = best2.argsort(dim=-1, descending=True)
    src2, unm2 = edges2[:, :r2], edges2[:, r2:]
    slot_a = torch.empty(B, na, dtype=torch.long)
    slot_b = torch.empty(B, nb, dtype=torch.long)
    ar = torch.arange
    slot_a.scatter_(1, unm, ar(na - r1).expand(B, -1).clone())
    slot_b.scatter_(1, unm2, (na - r1 + ar(nb - r2)).expand(B, -1).clone())
    slot_b.scatter_(1, src2, best_a.gather(1, src2))
    slot_a.scatter_(1, src, slot_b.gather(1, best_b.gather(1, src)))
    dest = torch.empty(B, N, dtype=torch.long)
    dest[:, 0::2], dest[:, 1::2] = slot_a, slot_b
    # decision margins: r1-th vs (r1+1)-th edge, r2-th vs (r2+1)-th, best vs second of every fused row
    gap = torch.full((B,), math.inf)
    sb, sb2 = best.gather(1, edges), best2.gather(1, edges2)
    if 0 < r1 < na:
        gap = torch.minimum(gap, sb[:, r1 - 1] - sb[:, r1])
    if 0 < r2 < nb:
        gap = torch.minimum(gap, sb2[:, r2 - 1] - sb2[:, r2])
    for sc, rows in ((score, src), (score2, src2)):
        if rows.shape[1] and sc.shape[2] > 1:
            t2 = sc.gather(1, rows[..., None].expand(B, rows.shape[1], sc.shape[2])).topk(2, dim=-1).values
            gap = torch.minimum(gap, (t2[..., 0] - t2[..., 1]).min(dim=-1).values)
    return dest, N - r, gap


def spec_forward(model, x, r_eval, activate):
    """deit_tiny with MCTF written from the spec on vit_ref's modules. Returns logits, tokens, clusters, gaps."""
    B = x.shape[0]
    x = model.patch_embed(x)
    x = torch.cat((model.cls_token.expand(B, -1, -1), x), dim=1) + model.pos_embed
    size = None
    cluster = torch.arange(x.shape[1]).expand(B, -1).clone()
    tokens, clusters, gaps = [], [], []
    for l, blk in enumerate(model.blocks):
        at = blk.attn
        N, C, H = x.shape[1], x.shape[2], at.num_heads
        d = C // H

        def attention_probs(h):
            qkv = at.qkv(h).reshape(B, -1, 3, H, d).permute(2, 0, 3, 1, 4)
            logits = (qkv[0] @ qkv[1].transpose(-2, -1)) * at.scale
            if size is not None:                                      # proportional attention
                logits = logits + size.log()[:, None, None, :]
            return logits.softmax(dim=-1), qkv[2]

        r = spec_r(N, r_eval) if l in activate else 0
        if r > 0:
            A, _ = attention_probs(blk.norm1(x))                       # block l's attention, current tokens
            s = size if size is not None else x.new_ones(B, N)
            dest, n_out, gap = spec_plan(x, A, s, r)
            gaps.append(gap)
            a_recv = A.mean(dim=(1, 2))                               # [B, N] attention received
            w = a_recv * (s / s.max(dim=1, keepdim=True).values)      # fusion weight of every token
            wsum = x.new_zeros(B, n_out).scatter_add_(1, dest, w)
            x = x.new_zeros(B, n_out, C).scatter_add_(1, dest[..., None].expand(B, N, C), x * w[..., None])
            x = x / wsum[..., None]
            size = s.new_zeros(B, n_out).scatter_add_(1, dest, s)
            # merged attention: keys summed per slot, queries averaged with the fusion weights
            Ak = A.new_zeros(B, H, N, n_out).scatter_add_(3, dest[:, None, None, :].expand(B, H, N, N), A)
            Aq = A.new_zeros(B, H, n_out, n_out).scatter_add_(
                2, dest[:, None, :, None].expand(B, H, N, n_out), Ak * w[:, None, :, None])
            A = Aq / wsum[:, None, :, None]
            v = at.qkv(blk.norm1(x))[..., 2 * C:].reshape(B, n_out, H, d).permute(0, 2, 1, 3)
            y = at.proj((A @ v).transpose(1, 2).reshape(B, n_out, C))
            cluster = dest.gather(1, cluster)
        else:
            gaps.append(x.new_full((B,), math.inf))
            A, v = attention_probs(blk.norm1(x))
            y = at.proj((A @ v).transpose(1, 2).reshape(B, N, C))
        x = x + y
        x = x + blk.mlp(blk.norm2(x))
        tokens.append(x.shape[1])
        clusters.append(cluster.clone())
    x = model.norm(x)
    return model.head(x[:, 0]), tokens, torch.stack(clusters, dim=1), torch.stack(gaps, dim=1)

# ----------------------------------------------------------------------------- main


def same_partitions(c1, c2):
    return [(i, l) for i in range(c1.shape[0]) for l in range(c1.shape[1])
            if canonical(c1[i, l].tolist()) != canonical(c2[i, l].tolist())]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--released", required=True, help="checkout of github.com/mlvlab/MCTF")
    p.add_argument("--model", default=SHARED_MODEL)
    p.add_argument("--input", default=SHARED_GOLDEN,
                   help="golden file whose `input` (4 preprocessed images) and `none` logits are used")
    p.add_argument("--out", default=os.path.normpath(os.path.join(HERE, "..", "..", "tests", "golden", "mctf.safetensors")))
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)

    released = os.path.abspath(a.released)
    _, blocks_mod, mhsa_mod = import_released(released)
    commit = timm_shim.git_head(released)
    g, gmeta = vit_ref.read_safetensors(a.input)
    x = torch.from_numpy(g["input"])
    ok = True

    # 1. The machinery without MCTF reproduces the shared `none` reference (timm-equivalent forward).
    model, _ = vit_ref.load_model(a.model)
    net = ReleasedMCTF(model, blocks_mod, mhsa_mod, make_info([0, 0, 1] + FIXED, ALL, use_mctf=False))
    with torch.inference_mode():
        out, tokens, _ = net(x, None)
    ref = torch.from_numpy(g["none.logits"])
    rel = ((out - ref).abs().max() / ref.abs().max()).item()
    good = rel < 1e-4 and tokens == [197] * 12
    ok &= good
    print(f"none (released Block_DEIT, use_mctf=False) vs shared golden none: rel={rel:.2e} "
          f"-> {'ok' if good else 'FAIL'}")

    tensors, settings = {}, {}
    for name, (r, activate, script) in SETTINGS.items():
        mctf_type = [r, 0, 1] + FIXED
        model, _ = vit_ref.load_model(a.model)
        net = ReleasedMCTF(model, blocks_mod, mhsa_mod, make_info(mctf_type, activate))
        with torch.inference_mode():
            logits, tokens, cluster = net(x, r)
        tensors[f"{name}.logits"] = logits.numpy().astype(np.float32)
        tensors[f"{name}.tokens_per_layer"] = np.array(tokens, dtype=np.int64)
        tensors[f"{name}.cluster_of_token"] = cluster.numpy().astype(np.int64)
        n, sched = 197, []
        for l in range(12):
            rl = spec_r(n, r) if l in activate else 0
            sched.append(max(rl, 0))
            n -= max(rl, 0)
        settings[name] = {
            "method": "mctf", "r": r, "activate_layer": activate, "schedule_r": sched,
            "tokens_per_layer": tokens, "mctf_type": mctf_type,
            "mctf_type_fields": ["r_student(r_eval)", "r_teacher_max", "trace_source", "prop_attn",
                                 "one_step_ahead", "tau_sim", "tau_info", "tau_size", "bidirection",
                                 "pooling_type", "unused"],
            "prop_attn": True, "one_step_ahead": 1, "tau_sim": 1, "tau_info": 20, "tau_size": 40,
            "bidirection": True, "pooling_type": 1, "num_protected": 1, "from": script,
        }
        # 2. The spec, implemented independently, agrees.
        model, _ = vit_ref.load_model(a.model)
        with torch.inference_mode():
            s_logits, s_tokens, s_cluster, gaps = spec_forward(model, x, r, activate)
        rel = ((s_logits - logits).abs().max() / logits.abs().max()).item()
        bad = same_partitions(s_cluster.numpy(), cluster.numpy())
        good = rel < 1e-4 and s_tokens == tokens and not bad and sched == [
            t0 - t1 for t0, t1 in zip([197] + tokens[:-1], tokens)]
        ok &= good
        print(f"{name}: tokens {tokens} top1 {logits.argmax(-1).tolist()} | spec re-implementation: "
              f"rel={rel:.2e} tokens={'match' if s_tokens == tokens else 'MISMATCH'} "
              f"partitions={'match' if not bad else f'MISMATCH {bad[:6]}'} "
              f"min decision gap={gaps.min().item():.2e} -> {'ok' if good else 'FAIL'}")

    meta = {
        "method": "mctf",
        "model": os.path.basename(os.path.normpath(a.model)),
        "images": gmeta.get("images", "[]"),
        "input": f"{os.path.basename(a.input)} tensor `input` (not repeated here)",
        "released": "github.com/mlvlab/MCTF",
        "released_commit": commit,
        "generator": "scripts/golden/make_mctf.py",
        "threads": str(a.threads),
        "torch": torch.__version__,
        "settings": json.dumps(settings),
    }
    if ok:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        vit_ref.write_safetensors(a.out, tensors, meta)
        print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes), released commit {commit}")
    else:
        print("checks failed: nothing written")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
