#!/usr/bin/python3
"""Golden references for DiffRate (Chen et al., ICCV 2023), made with the released code as PiToMe ships it.

Imports PiToMe's algo/DiffRate/patch/deit.py (and through it patch/timm.py, merge.py, ddp.py, utils.py) from
the repository given by --released, patches vit_ref's deit_tiny (via timm_shim) with its apply_patch, sets the
per-block kept-token counts with the released init_kept_num_using_r / init_kept_num_using_ratio / set_kept_num,
and runs the released forward on the four golden images. The released source tracing (trace_source=True,
amax-merged one-hot rows) is read after every block to get cluster_of_token.

Writes tests/golden/diffrate.safetensors in the golden layout (see ../../../shared/golden/README.md):
    <setting>.logits            [4,1000] f32
    <setting>.tokens_per_layer  [12] i64     tokens leaving each block (the same for every image)
    <setting>.cluster_of_token  [4,12,197] i64  after block l, output token holding original token t, -1 pruned
    __metadata__                model, images, input (file + sha256 of the input tensor), settings (JSON: the
                                exact prune/merge kept counts per block), released (repo, path, commit), ...
The input images are not stored again: they are `input` of the shared golden file.

Checks (all on by default; exit 1 when one fails):
  * shim    the DiffRate-patched model with nothing reduced (kept 197 everywhere) reproduces the shared
            golden `none` logits, i.e. the released forward on the shim is the timm forward;
            with --tome, the released ToMe patch on the same shim reproduces tome_r8 / tome_r13 /
            tome_r16_noprop logits of the shared golden file.
  * spec    an independent re-implementation of the specification (/work/scratch/specs/diffrate.md), written
            on vit_ref without the released code, gives the same tokens per layer and partitions and logits
            within 1e-4 of max |logit|; it also reports each image's smallest decision gap (near-ties).

Run:  /usr/bin/python3 scripts/golden/make_diffrate.py --released /work/scratch/hchautran+PiToMe \
          [--tome /work/scratch/facebookresearch+ToMe]
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "pyref"))
import timm_shim  # noqa: E402
import vit_ref    # noqa: E402
from golden_common import (SHARED_GOLDEN, SHARED_MODEL, canonical, differing, rel_err,  # noqa: E402
                           shared_input_ref,
                           write_golden)  # noqa: E402

# Searched DeiT-Ti schedule of the DiffRate authors (OpenGVLab/DiffRate compression_rate.json, key
# "ViT-T-DeiT" / "0.7" GFLOPs, commit b380acf1ada7cb0e38141324649f1cdcf80bb77c); counts include CLS.
SCHED_DEIT_T_0_7 = ([197, 196, 194, 180, 150, 123, 98, 82, 68, 60, 52, 3],
                    [197, 196, 192, 158, 133, 103, 88, 72, 64, 58, 49, 3])

SETTINGS = {
    # name: how the kept counts are initialised (PiToMe's main_ic.py uses the ratio init)
    "diffrate_ratio0.95": {"init": "ratio", "ratio": 0.95},        # ~ ToMe r=8 MACs
    "diffrate_r13": {"init": "r", "r": 13},                         # ~ ToMe r=13
    "diffrate_r16": {"init": "r", "r": 16},                         # ~ ToMe r=16
    "diffrate_sched_deit_t_0.7": {"init": "schedule", "schedule_source":
                                  "OpenGVLab/DiffRate compression_rate.json ViT-T-DeiT 0.7 (b380acf)",
                                  "prune_kept_num": SCHED_DEIT_T_0_7[0],
                                  "merge_kept_num": SCHED_DEIT_T_0_7[1]},  # ~ ToMe r=13
}

# ----------------------------------------------------------------------------- released code


def load_released(root):
    """Import PiToMe's algo/DiffRate/patch/deit.py without running any package __init__ (those import every
    model family). utils.py imports tqdm (not installed here, unused at inference): a stand-in is registered."""
    timm_shim.install()
    timm_shim.stub("tqdm", tqdm=lambda it=None, *a, **k: it)
    return timm_shim.import_released(root, "algo.DiffRate.patch.deit")


def released_model(mod, model_dir, setting):
    model = timm_shim.load_deit(model_dir)
    mod.apply_patch(model, trace_source=True)       # prints "using diffrate"
    model.eval()
    if setting["init"] == "r":
        model.init_kept_num_using_r(setting["r"])
    elif setting["init"] == "ratio":
        model.init_kept_num_using_ratio(setting["ratio"])
    elif setting["init"] == "schedule":
        model.set_kept_num(list(setting["prune_kept_num"]), list(setting["merge_kept_num"]))
    elif setting["init"] != "default":              # "default": as apply_patch leaves them
        raise ValueError(setting)
    return model


def run_released(model, x):
    """Released forward with a hook after every block reading the released source matrix [B, N', N0]."""
    clusters, tokens = [], []
    info = model._info

    def hook(_module, _inp, out):
        src = info["source"]                         # rows: current tokens, cols: original tokens
        has, row = (src > 0).max(dim=1)             # [B, N0]
        clusters.append(torch.where(has, row, torch.full_like(row, -1)))
        tokens.append(out.shape[1])

    handles = [blk.register_forward_hook(hook) for blk in model.blocks]
    try:
        with torch.no_grad():
            logits = model(x, return_flop=False)
    finally:
        for h in handles:
            h.remove()
    return logits, torch.stack(clusters, dim=1), tokens

# ----------------------------------------------------------------------------- specification re-implementation


def spec_counts(setting, depth=12, patches=196):
    """Kept counts per block (prune, merge), including CLS, as the specification derives them."""
    if setting["init"] == "schedule":
        return list(setting["prune_kept_num"]), list(setting["merge_kept_num"])
    prune, merge = [], []
    n = patches                    # the released init starts from the patch count (CLS not counted)
    r_keep = setting.get("r")
    for _ in range(depth):
        if setting["init"] == "r":
            r_keep = min(r_keep, n // 2)
            r = r_keep
        else:
            r = math.floor(n - n * setting["ratio"])
        prune.append(n)
        merge.append(n - r)
        n -= r
    return prune, merge


def spec_forward(model, x, prune_kept, merge_kept):
    """DiffRate inference as specified, on a plain vit_ref model. Returns (logits, cluster [B,L,N0],
    tokens [L], gap [B,L]: smallest decision gap of each block)."""
    B = x.shape[0]
    with torch.no_grad():
        t = model.patch_embed(x)
        t = torch.cat([model.cls_token.expand(B, -1, -1), t], dim=1) + model.pos_embed
        n0 = t.shape[1]
        size = t.new_ones(B, n0)
        owner = torch.arange(n0).expand(B, n0).clone()          # original token -> current index (-1 pruned)
        clusters, tokens, gaps = [], [], []
        for l, blk in enumerate(model.blocks):
            at = blk.attn
            n, c = t.shape[1], t.shape[2]
            qkv = at.qkv(blk.norm1(t)).reshape(B, n, 3, at.num_heads, c // at.num_heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            logit = (q @ k.transpose(-2, -1)) * at.scale + size.log()[:, None, None, :]
            p = logit.softmax(dim=-1)
            t = t + at.proj((p @ v).transpose(1, 2).reshape(B, n, c))
            # importance: CLS row of the attention probabilities, mean over heads, over non-CLS keys
            imp = p[:, :, 0, 1:].mean(dim=1)
            imp_sorted, order = torch.sort(imp, dim=1, descending=True)
            order = torch.cat([torch.zeros(B, 1, dtype=torch.long), order + 1], dim=1)
            n1 = min(n, prune_kept[l])
            n2 = min(n1, merge_kept[l])
            gap = torch.full((B,), float("inf"))
            for boundary, limit in ((n1, n), (n2, n1)):         # last kept vs first cut, importance order
                if 2 <= boundary < limit:
                    gap = torch.minimum(gap, imp_sorted[:, boundary - 2] - imp_sorted[:, boundary - 1])
            new_t, new_size, new_pos = [], [], []
            for b in range(B):
                xs, ss = t[b, order[b]], size[b, order[b]]
                pos = torch.full((n,), -1, dtype=torch.long)      # current token -> output index
                pos[order[b, :n2]] = torch.arange(n2)
                if n2 < n1:
                    f = xs[:n1] / xs[:n1].norm(dim=-1, keepdim=True)
                    sim = f[n2:] @ f[:n2].T                      # unimportant x important
                    sim[:, 0] = -math.inf                         # never into CLS
                    top = sim.topk(min(2, n2), dim=-1)
                    best, dst = top.values[:, 0], top.indices[:, 0]
                    if n2 >= 3:                                   # best vs second best important (non-CLS)
                        gap[b] = min(gap[b], (top.values[:, 0] - top.values[:, 1]).min())
                    onehot = F.one_hot(dst, n2).to(xs.dtype).T   # [n2, n1-n2]
                    cnt = 1.0 + onehot.sum(dim=1, keepdim=True)
                    xm = (xs[:n2] + onehot @ xs[n2:n1]) / cnt     # plain mean, the kept token included
                    sm = ss[:n2] + onehot @ (ss[n2:n1] * best)    # size: + similarity-weighted sizes
                    pos[order[b, n2:n1]] = dst
                else:
                    xm, sm = xs[:n2], ss[:n2]
                new_t.append(xm)
                new_size.append(sm)
                new_pos.append(pos)
            t, size = torch.stack(new_t), torch.stack(new_size)
            pos = torch.stack(new_pos)                           # [B, n]
            owner = torch.where(owner >= 0, pos.gather(1, owner.clamp(min=0)), owner)
            t = t + blk.mlp(blk.norm2(t))
            clusters.append(owner.clone())
            tokens.append(t.shape[1])
            gaps.append(gap)
        logits = model.head(model.norm(t)[:, 0])
    return logits, torch.stack(clusters, dim=1), tokens, torch.stack(gaps, dim=1)

# ----------------------------------------------------------------------------- main


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--released", required=True, help="PiToMe repository root (hchautran/PiToMe)")
    p.add_argument("--tome", help="ToMe repository root (facebookresearch/ToMe): also check the shim with it")
    p.add_argument("--model", default=SHARED_MODEL)
    p.add_argument("--golden", default=SHARED_GOLDEN)
    p.add_argument("--out", default=os.path.join(HERE, "..", "..", "tests", "golden", "diffrate.safetensors"))
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)

    g, gmeta = vit_ref.read_safetensors(a.golden)
    x = torch.from_numpy(g["input"])
    mod = load_released(a.released)
    ok = True

    # shim check: nothing reduced -> timm logits (the released block still re-sorts tokens every block)
    model = released_model(mod, a.model, {"init": "schedule", "prune_kept_num": [197] * 12,
                                          "merge_kept_num": [197] * 12})
    logits, _, tokens = run_released(model, x)
    err = rel_err(logits, torch.from_numpy(g["none.logits"]))
    good = err < 1e-4 and tokens == [197] * 12
    ok &= good
    print(f"shim: DiffRate with nothing reduced vs golden none: rel={err:.2e} tokens={tokens} "
          f"-> {'ok' if good else 'FAIL'}")
    if a.tome:
        ok &= check_tome_shim(a.tome, a.model, g, x)

    tensors, settings_meta, gaps_meta = {}, {}, {}
    for name, s in SETTINGS.items():
        model = released_model(mod, a.model, s)
        prune, merge = model.get_kept_num()
        logits, cluster, tokens = run_released(model, x)
        if not torch.isfinite(logits).all():
            print(f"{name}: non-finite logits from the released code")
            ok = False
        # the specification, independently
        sp, sm = spec_counts(s)
        ref_model, _ = vit_ref.load_model(a.model)
        s_logits, s_cluster, s_tokens, s_gap = spec_forward(ref_model, x, sp, sm)
        err = rel_err(s_logits, logits)
        bad = differing(s_cluster.numpy(), cluster.numpy())
        good = (sp, sm) == (prune, merge) and s_tokens == tokens and not bad and err < 1e-4
        ok &= good
        print(f"{name}: prune_kept {prune}\n{'':{len(name) + 2}}merge_kept {merge}\n"
              f"{'':{len(name) + 2}}tokens {tokens}  top1 {logits.argmax(-1).tolist()}\n"
              f"{'':{len(name) + 2}}spec: counts {'match' if (sp, sm) == (prune, merge) else 'DIFFER'}, "
              f"tokens {'match' if s_tokens == tokens else 'DIFFER'}, partitions "
              f"{'match' if not bad else f'DIFFER at {bad[:6]}'}, logits rel={err:.2e}, smallest decision gap "
              f"per image {[f'{v:.1e}' for v in s_gap.min(dim=1).values.tolist()]} -> {'ok' if good else 'FAIL'}")
        tensors[f"{name}.logits"] = logits.float().numpy()
        tensors[f"{name}.tokens_per_layer"] = np.array(tokens, dtype=np.int64)
        tensors[f"{name}.cluster_of_token"] = cluster.numpy().astype(np.int64)
        settings_meta[name] = {"method": "diffrate", **{k: v for k, v in s.items()
                                                        if k not in ("prune_kept_num", "merge_kept_num")},
                               "prune_kept_num": prune, "merge_kept_num": merge, "prop_attn": True,
                               "merge_metric": "x (block tokens after the attention residual)",
                               "merge_combine": "plain mean (kept token + its merged tokens, sizes ignored)",
                               "size_update": "size[dst] + sum size[src] * cos(src, dst)"}
        gaps_meta[name] = [[float(f"{v:.3e}") for v in row] for row in s_gap.tolist()]

    released = os.path.abspath(a.released)
    meta = {
        "model": os.path.basename(os.path.normpath(a.model)),
        "images": gmeta.get("images", ""),
        "input": shared_input_ref(g),
        "settings": json.dumps(settings_meta),
        "released": json.dumps({"repo": "hchautran/PiToMe", "path": "algo/DiffRate",
                                "commit": timm_shim.git_head(released),
                                "entry": "algo/DiffRate/patch/deit.py apply_patch + init_kept_num_using_r / "
                                         "init_kept_num_using_ratio / set_kept_num, eval mode"}),
        "decision_gap": json.dumps(gaps_meta),
        "generator": "scripts/golden/make_diffrate.py (timm stand-in: scripts/golden/timm_shim.py)",
        "torch": torch.__version__, "threads": str(torch.get_num_threads()),
        "spec": "see the opening comment of core/reduce/diffrate.cpp (from /work/scratch/specs/diffrate.md)",
    }
    if not ok:
        print("not writing: a check failed")
        return 1
    write_golden(a.out, tensors, meta, vit_ref.write_safetensors, vit_ref.read_safetensors)
    return 0


def check_tome_shim(root, model_dir, g, x):
    """The released ToMe patch on the same shim reproduces the shared golden ToMe logits."""
    timm_shim.stub("tqdm", tqdm=lambda it=None, *a, **k: it)
    tm = timm_shim.import_released(root, "tome.patch.timm")
    ok = True
    for name, r, prop in (("tome_r8", 8, True), ("tome_r13", 13, True), ("tome_r16_noprop", 16, False)):
        model = timm_shim.load_deit(model_dir)
        tm.apply_patch(model, prop_attn=prop)
        model.r = r
        with torch.no_grad():
            logits = model(x)
        err = rel_err(logits, torch.from_numpy(g[f"{name}.logits"]))
        ok &= err < 1e-4
        print(f"shim: released ToMe {name} vs golden: rel={err:.2e} -> {'ok' if err < 1e-4 else 'FAIL'}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
