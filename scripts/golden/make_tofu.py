#!/usr/bin/python3
"""Golden reference for ToFu (Token Fusion) made with the released code of PiToMe's repository (algo/tofu).

Runs the released ToFu patch (algo/tofu/patch/deit.py + patch/timm.py + merge.py, imported at run time from
--released, never copied) on vit_ref's deit_tiny through the timm 0.4.12 stand-in (timm_shim.py), on the
four preprocessed golden images (tensor `input` of the shared golden file), exactly as the repository's
image-classification evaluation wires it (main_ic.py get_model: patch.deit(model) with its defaults, then
model.ratio = RATIO). Writes tests/golden/tofu.safetensors in the shared golden layout:

  tofu_<ratio>.logits            [4,1000] f32
  tofu_<ratio>.tokens_per_layer  [12] i64   tokens leaving each block (the same for every image)
  tofu_<ratio>.cluster_of_token  [4,12,197] i64  after block l, the output token holding original token t,
                                 -1 once t was pruned (ToFu discards the tokens it prunes)
  __metadata__                   model, images, settings (JSON: ratio, per-block strategy, tokens removed per
                                 block, released commit), smallest decision gap per setting

The partition is traced by applying each block's released merge function itself to a one-hot source matrix:
with the block's own mode in prune blocks (the pruned rows disappear, as from x) and with 'amax' in merge
blocks (merge_source's mode), so it cannot disagree with what the released code did to x.

Every setting is also run with an independent re-implementation of the merge (spec_bsm: destination slots
plus the combine, the way the C++ reducer works) in place of the released one; tokens and partitions must be
identical and the logits within 1e-4, or nothing is written.

--verify-tome PATH (facebookresearch/ToMe) also runs the official ToMe patch through the same stand-in and
tracing, and compares with the shared golden settings none/tome_r8/tome_r13/tome_r16_noprop: this checks that
the stand-in forward is timm-equivalent and the tracing agrees with the shared golden file.

Run:  /usr/bin/python3 scripts/golden/make_tofu.py --released /work/scratch/hchautran+PiToMe \
          [--verify-tome /work/scratch/facebookresearch+ToMe]
"""
import argparse
import json
import math
import os
import sys
import warnings

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import timm_shim  # noqa: E402  (also puts scripts/pyref on sys.path)
import vit_ref  # noqa: E402
from golden_common import SHARED_GOLDEN, SHARED_MODEL, base_metadata, canonical  # noqa: E402

warnings.filterwarnings("ignore", message="scatter_reduce\\(\\) is in beta")

DEFAULT_RATIOS = [0.95, 0.9, 0.875]   # GMACs near ToMe r=8, r=13, r=16; 0.9 and 0.95 are in the repo's eval loop


def cluster_from_source(source):
    """source [B,T,N0] 0/1: row j holds original token t -> [B,N0] row index, -1 where no row holds t."""
    held = source > 0
    count = held.sum(dim=1)
    assert int(count.max()) <= 1, "an original token is held by two output tokens"
    return torch.where(count > 0, held.float().argmax(dim=1), torch.full_like(count, -1)).long()


class Tracer:
    """Per-forward record of a patched model: after every block the token count and cluster_of_token."""

    def __init__(self, model, n0, batch, source_fn=None):
        """source_fn: where the [B,T,N0] source matrix lives after a block (default: self.source, which the
        caller advances)."""
        self.n0, self.batch = n0, batch
        self.source_fn = source_fn or (lambda: self.source)
        self.reset()
        for blk in model.blocks:
            blk.register_forward_hook(self._after_block)

    def reset(self):
        self.source = torch.eye(self.n0).expand(self.batch, self.n0, self.n0).clone()
        self.tokens, self.cluster, self.gaps = [], [], []

    def _after_block(self, module, inputs, output):
        x = output[0] if isinstance(output, tuple) else output
        source = self.source_fn()
        if source is None:                 # nothing merged yet
            source = torch.eye(self.n0).expand(self.batch, self.n0, self.n0)
        assert source.shape[1] == x.shape[1], (source.shape, x.shape)
        self.tokens.append(int(x.shape[1]))
        self.cluster.append(cluster_from_source(source))


def tofu_decision_gap(metric, r, class_token, mode):
    """Smallest score difference behind one ToFu step's decisions [B]: the r-th vs (r+1)-th best edge (which A
    tokens go) and, in merge blocks, best vs second-best B of every merged A (where it goes; in prune blocks
    the destination is irrelevant). Written here for the report, not taken from the released code."""
    m = metric / metric.norm(dim=-1, keepdim=True)
    scores = m[:, ::2] @ m[:, 1::2].transpose(-1, -2)
    if class_token:
        scores[:, 0, :] = -math.inf
    best = scores.max(dim=-1).values
    srt, order = best.sort(dim=-1, descending=True)
    gap = torch.full(best.shape[:1], math.inf)
    if 0 < r < srt.shape[1]:
        gap = torch.minimum(gap, (srt[:, r - 1] - srt[:, r]).nan_to_num(posinf=math.inf))
    if mode == "tofu" and r > 0 and scores.shape[2] > 1:
        top2 = scores.gather(1, order[:, :r, None].expand(-1, r, scores.shape[2])).topk(2, dim=-1).values
        gap = torch.minimum(gap, (top2[..., 0] - top2[..., 1]).min(dim=-1).values)
    return gap


def spec_bsm(metric, ratio=1.0, class_token=False):
    """ToFu's matching and merging written independently from its written description (not its code), the way the
    C++ reducer works: a destination slot per token (-1 = pruned), then the combine. Drop-in for the released
    bipartite_soft_matching inside the released block (so only the merge arithmetic is re-implemented)."""
    bs, t, _ = metric.shape
    r = math.floor(t - t * ratio)
    m = metric / metric.norm(dim=-1, keepdim=True)
    scores = m[:, 0::2] @ m[:, 1::2].transpose(-1, -2)              # [B, Na, Nb]
    if class_token:
        scores[:, 0, :] = -math.inf
    na, nb = scores.shape[1], scores.shape[2]
    best, best_b = scores.max(dim=-1)
    edges = best.argsort(dim=-1, descending=True)
    src = edges[:, :r]
    unm = edges[:, r:].sort(dim=-1).values if class_token else edges[:, r:]
    n_unm = na - r
    slot_a = torch.empty(bs, na, dtype=torch.long)
    slot_a.scatter_(1, unm, torch.arange(n_unm).expand(bs, n_unm))
    merged_slot = best_b.gather(1, src) + n_unm

    def merge(x, mode="mean"):
        dest = torch.empty(bs, t, dtype=torch.long)
        sa = slot_a.clone()
        sa.scatter_(1, src, merged_slot if mode in ("tofu", "amax", "mean") else torch.full_like(src, -1))
        dest[:, 0::2], dest[:, 1::2] = sa, torch.arange(nb).expand(bs, nb) + n_unm
        out_n, c = n_unm + nb, x.shape[-1]
        keep = dest >= 0
        if mode not in ("tofu", "amax"):                              # prune: pruned rows vanish
            out = x.new_zeros(bs, out_n, c)
            for b in range(bs):
                out[b, dest[b][keep[b]]] = x[b][keep[b]]
            return out
        if mode == "amax":                                            # source tracing
            out = x.new_zeros(bs, out_n, c)
            return out.scatter_reduce(1, dest[..., None].expand(bs, t, c), x, reduce="amax", include_self=False)
        # tofu: plain mean of the B token and the A tokens merged into it, rescaled by
        # max(member norms) / norm of the B token before the merge
        norms = x.norm(dim=-1)
        total = x.new_zeros(bs, out_n, c).scatter_add(1, dest[..., None].expand(bs, t, c), x)
        count = x.new_zeros(bs, out_n).scatter_add(1, dest, torch.ones(bs, t))
        top = x.new_zeros(bs, out_n).scatter_reduce(1, dest, norms, reduce="amax", include_self=False)
        own = x.new_ones(bs, out_n).scatter(1, dest[:, 1::2], norms[:, 1::2])   # B token's own norm
        is_b = torch.zeros(bs, out_n, dtype=torch.bool)
        is_b[:, n_unm:] = True
        mean = total / count[..., None]
        return torch.where(is_b[..., None], mean / own[..., None] * top[..., None], mean)
    return merge


def load_released_tofu(root):
    deit = timm_shim.import_released(root, "algo.tofu.patch.deit")
    return deit, sys.modules["algo.tofu.patch.timm"]


def run_tofu(root, model_dir, x, ratio, bsm=None):
    """One forward of the released ToFu on x; returns (logits, tokens, cluster [B,12,197], schedule, gaps,
    strategies, released flop count). bsm replaces the released bipartite_soft_matching (spec check)."""
    deit, tofu_timm = load_released_tofu(root)
    model = timm_shim.load_deit(model_dir)
    deit.apply_patch(model)            # main_ic.get_model: defaults trace_source=False, prop_attn=True
    model.ratio = float(ratio)
    tracer = Tracer(model, model.pos_embed.shape[1], x.shape[0])
    schedule = []
    released_bsm = tofu_timm.bipartite_soft_matching
    matching = bsm or released_bsm

    def traced_bsm(metric, ratio=1.0, class_token=False):
        merge = matching(metric=metric, ratio=ratio, class_token=class_token)
        t = metric.shape[1]
        step = {"tokens_in": t}

        def traced_merge(x, mode="mean"):
            out = merge(x, mode=mode)
            # The released merge_source uses 'amax' everywhere (so its trace would keep pruned tokens in their
            # best B); here prune blocks drop the pruned rows exactly as x loses them.
            tracer.source = merge(tracer.source, mode="amax" if mode == "tofu" else mode)
            step.update(mode=mode, removed=t - out.shape[1])
            tracer.gaps.append(tofu_decision_gap(metric, t - out.shape[1], class_token, mode))
            schedule.append(step)
            return out
        return traced_merge

    tofu_timm.bipartite_soft_matching = traced_bsm
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        tofu_timm.bipartite_soft_matching = released_bsm
    logits, flop = out                 # the patched forward returns (logits, total_flop) by default
    strategies = [blk.strategy for blk in model.blocks]
    return logits, tracer.tokens, torch.stack(tracer.cluster, dim=1), schedule, tracer.gaps, strategies, flop


def verify_tome(tome_root, model_dir, golden_path, x):
    """Official ToMe through the same stand-in and tracing vs. the shared golden settings."""
    timm_shim.stub("tqdm", tqdm=lambda it=None, *a, **k: it)   # tome.utils imports it
    patch = timm_shim.import_released(tome_root, "tome.patch.timm")
    g, meta = vit_ref.read_safetensors(golden_path)
    settings = json.loads(meta["settings"])
    ok = True
    for name in ("none", "tome_r8", "tome_r13", "tome_r16_noprop"):
        s = settings[name]
        model = timm_shim.load_deit(model_dir)
        if s["method"] == "tome":
            patch.apply_patch(model, trace_source=True, prop_attn=s["prop_attn"])
            model.r = s["r"]
        info = getattr(model, "_tome_info", {})
        tracer = Tracer(model, model.pos_embed.shape[1], x.shape[0], lambda: info.get("source"))
        with torch.no_grad():
            logits = model(x)
        good, line = compare(name, logits, tracer.tokens, torch.stack(tracer.cluster, dim=1), g)
        ok &= good
        print("verify official ToMe via timm_shim:", line)
    return ok


def compare(name, logits, tokens, cluster, g):
    ref = torch.from_numpy(g[f"{name}.logits"])
    rel = (logits - ref).abs().max().item() / ref.abs().max().item()
    ref_tokens = g[f"{name}.tokens_per_layer"].tolist()
    ref_cluster = g[f"{name}.cluster_of_token"]
    bad = [(i, l) for i in range(ref_cluster.shape[0]) for l in range(ref_cluster.shape[1])
           if canonical(cluster[i, l].tolist()) != canonical(ref_cluster[i, l].tolist())]
    good = rel < 1e-4 and tokens == ref_tokens and not bad
    return good, (f"{name}: rel_logit_err={rel:.2e} tokens={'match' if tokens == ref_tokens else 'MISMATCH'} "
                  f"partitions={'match' if not bad else f'MISMATCH {bad[:6]}'} -> {'ok' if good else 'FAIL'}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--released", required=True, help="checkout of hchautran/PiToMe (algo/tofu is used)")
    p.add_argument("--model", default=SHARED_MODEL)
    p.add_argument("--golden", default=SHARED_GOLDEN,
                   help="shared golden file: its `input` tensor and image names are used")
    p.add_argument("--out", default=os.path.join(HERE, "..", "..", "tests", "golden", "tofu.safetensors"))
    p.add_argument("--ratio", type=float, action="append", help=f"keep ratios (default {DEFAULT_RATIOS})")
    p.add_argument("--verify-tome", metavar="PATH", help="checkout of facebookresearch/ToMe (see above)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    timm_shim.install()

    g, gmeta = vit_ref.read_safetensors(a.golden)
    x = torch.from_numpy(g["input"])
    if a.verify_tome and not verify_tome(a.verify_tome, a.model, a.golden, x):
        return 1

    # ratio 1.0 leaves every block alone (ToFuBlock skips ratio >= 1): the patched forward must be `none`.
    logits, tokens, cluster, *_ = run_tofu(a.released, a.model, x, 1.0)
    good, line = compare("none", logits, tokens, cluster, g)
    print("released ToFu patch at ratio 1.0 vs golden none:", line)
    if not good:
        return 1

    commit = timm_shim.git_head(a.released)
    tensors, settings = {}, {}
    for ratio in a.ratio or DEFAULT_RATIOS:
        logits, tokens, cluster, schedule, gaps, strategies, flop = run_tofu(a.released, a.model, x, ratio)
        name = f"tofu_{ratio:g}"
        gap = torch.stack(gaps, dim=1)            # [images, blocks]
        s_logits, s_tokens, s_cluster, *_ = run_tofu(a.released, a.model, x, ratio, spec_bsm)
        s_rel = (s_logits - logits).abs().max().item() / logits.abs().max().item()
        s_bad = [(i, l) for i in range(cluster.shape[0]) for l in range(cluster.shape[1])
                 if canonical(cluster[i, l].tolist()) != canonical(s_cluster[i, l].tolist())]
        print(f"tofu_{ratio:g}: spec re-implementation vs released: rel_logit_err={s_rel:.2e} "
              f"tokens={'match' if s_tokens == tokens else 'MISMATCH'} "
              f"partitions={'match' if not s_bad else f'MISMATCH {s_bad[:6]}'}")
        if s_rel >= 1e-4 or s_tokens != tokens or s_bad:
            return 1
        tensors[f"{name}.logits"] = logits.numpy().astype(np.float32)
        tensors[f"{name}.tokens_per_layer"] = np.array(tokens, dtype=np.int64)
        tensors[f"{name}.cluster_of_token"] = cluster.numpy().astype(np.int64)
        settings[name] = {
            "method": "tofu", "ratio": ratio, "prop_attn": False, "size_weighted": False,
            "strategy_per_block": strategies,
            "tokens_in_per_block": [s["tokens_in"] for s in schedule],
            "removed_per_block": [s["removed"] for s in schedule],
            "released_total_flop": int(flop),
            "rel_logit_err_spec_reimplementation": float(f"{s_rel:.3e}"),
            "min_decision_gap_per_block": [float(f"{v:.3e}") for v in gap.min(dim=0).values.tolist()],
        }
        print(f"{name}: tokens {tokens} removed {settings[name]['removed_per_block']} "
              f"top1 {logits.argmax(-1).tolist()} smallest decision gap {gap.min().item():.2e} "
              f"(image, block) {divmod(int(gap.argmin()), gap.shape[1])}")
    meta = base_metadata(a.model, gmeta, "hchautran/PiToMe", commit,
                         ["algo/tofu/merge.py", "algo/tofu/patch/timm.py", "algo/tofu/patch/deit.py"],
                         "scripts/golden/make_tofu.py")
    meta.update({
        "settings": json.dumps(settings),
    })
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    vit_ref.write_safetensors(a.out, tensors, meta)
    print(f"wrote {os.path.normpath(a.out)} ({os.path.getsize(a.out)} bytes), released commit {commit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
