#!/usr/bin/python3
"""ToMe (Token Merging) in eager PyTorch, on top of vit_ref.py's timm-equivalent ViT.

Reference: D. Bolya, C.-Y. Fu, X. Dai, P. Zhang, C. Feichtenhofer, J. Hoffman,
"Token Merging: Your ViT But Faster", ICLR 2023 (arXiv:2210.09461).
Written here from the paper's description and the facts in DESIGN.md; it uses the same tensor operations
the released code uses (gather / scatter_reduce, x*size summed then divided by the summed size), so its
eager-mode speed is what a researcher running ToMe on a timm model would see.

Per block (merging in every block, the last included):
    x = x + Attn(LN1(x), log size added to every key's logit)        (proportional attention)
    metric = keys averaged over heads, L2-normalised
    A = tokens at even positions, B = odd; score = A B^T; CLS row (and distillation column) = -inf
    every A keeps its best B edge; the r best edges merge (r <= half the unprotected tokens)
    x, size = size-weighted mean of merged tokens; order [unmerged A sorted (CLS first), B]
    x = x + MLP(LN2(x))

Subcommands:
  golden  logits and tokens per layer (and token partitions) vs. the golden ToMe reference; exit 1 on mismatch
  bench   eager PyTorch throughput with ToMe r (r=0: the unreduced vit_ref forward)
  parts   per-op timing of one eager block at two token counts (where the unreduced path's time goes)
  traces  partitions after every block on a folder of images (see traces.py), tome or pitome-code

Run with the system interpreter: /usr/bin/python3 scripts/pyref/tome_ref.py SUBCOMMAND ...
"""
import argparse
import json
import os
import statistics
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import traces   # noqa: E402  (the traces subcommand, shared with pitome_ref)
import vit_ref  # noqa: E402  (model building, safetensors reader, random weights)

warnings.filterwarnings("ignore", message="scatter_reduce\\(\\) is in beta")

# ----------------------------------------------------------------------------- matching and merging


def bipartite_matching(metric, r, class_token, distill_token):
    """Plan one ToMe merge. metric [B,N,C] (keys averaged over heads).
    Returns None when nothing merges, else (unm_idx [B,Na-r], src_idx [B,r], dst_idx [B,r]):
    indices into A (even positions) of the kept and merged A tokens, and into B of each merged one's target."""
    r = _clamp_r(metric, r, class_token, distill_token)
    if r <= 0:
        return None
    scores = _scores(metric, class_token, distill_token)
    best, best_b = scores.max(dim=-1)                  # each A's best edge
    order = best.argsort(dim=-1, descending=True)
    src_idx = order[:, :r]                             # the r best edges merge
    unm_idx = order[:, r:].sort(dim=-1).values         # kept A tokens in original order (CLS first)
    dst_idx = best_b.gather(-1, src_idx)
    return unm_idx, src_idx, dst_idx


def _clamp_r(metric, r, class_token, distill_token):
    return min(r, (metric.shape[1] - int(class_token) - int(distill_token)) // 2)


def _scores(metric, class_token, distill_token):
    """A (even) x B (odd) cosine similarities [B, Na, Nb], protected rows/columns at -inf."""
    metric = metric / metric.norm(dim=-1, keepdim=True)
    a, b = metric[:, ::2], metric[:, 1::2]
    scores = a @ b.transpose(-1, -2)
    if class_token:
        scores[:, 0, :] = -float("inf")                # CLS (A's first) never merges
    if distill_token:
        scores[:, :, 0] = -float("inf")                # nothing merges into DIST (B's first)
    return scores


def decision_gap(metric, r, class_token, distill_token):
    """Smallest score difference behind this block's decisions [B] (the r-th vs (r+1)-th best edge, best vs
    second-best B of every merging A); inf when nothing merges. Only computed when tracing: a gap of a few
    float32 ulps marks a near-tie that another BLAS kernel or thread count may decide the other way."""
    r = _clamp_r(metric, r, class_token, distill_token)
    if r <= 0:
        return metric.new_full(metric.shape[:1], float("inf"))
    scores = _scores(metric, class_token, distill_token)
    top2 = scores.topk(min(2, scores.shape[2]), dim=-1).values
    best = top2[..., 0].sort(dim=-1, descending=True)
    second = top2[..., 0] - top2[..., -1] if top2.shape[2] == 2 else torch.full_like(top2[..., 0], float("inf"))
    gap = second.gather(1, best.indices[:, :r]).nan_to_num(nan=float("inf"), posinf=float("inf")).min(dim=-1).values
    if r < best.values.shape[1]:
        gap = torch.minimum(gap, (best.values[:, r - 1] - best.values[:, r]).nan_to_num(nan=float("inf"), posinf=float("inf")))
    return gap


def merge_sum(x, plan, distill_token):
    """Sum-merge x [B,N,C] along tokens with a plan from bipartite_matching."""
    unm_idx, src_idx, dst_idx = plan
    a, b = x[:, ::2], x[:, 1::2]
    bs, _, c = a.shape
    unm = a.gather(1, unm_idx[..., None].expand(bs, unm_idx.shape[1], c))
    src = a.gather(1, src_idx[..., None].expand(bs, src_idx.shape[1], c))
    b = b.scatter_reduce(1, dst_idx[..., None].expand(bs, dst_idx.shape[1], c), src, reduce="sum")
    if distill_token:                                  # keep [CLS, DIST, ...] for the two heads
        return torch.cat([unm[:, :1], b[:, :1], unm[:, 1:], b[:, 1:]], dim=1)
    return torch.cat([unm, b], dim=1)


def merge_wavg(x, size, plan, distill_token):
    """Size-weighted mean: merge x*size and size by summing, then divide."""
    x = merge_sum(x * size, plan, distill_token)
    size = merge_sum(size, plan, distill_token)
    return x / size, size


def merge_positions(plan, n, distill_token, device=None):
    """For the N current tokens, their index after the merge [B,N] (for tracing which original tokens
    share a group). Merges the one-hot position matrix with the same plan, so it cannot disagree with it."""
    bs = plan[0].shape[0]
    onehot = torch.eye(n, device=device).expand(bs, n, n)      # token i as a feature vector
    merged = merge_sum(onehot, plan, distill_token)           # [B, N', N]: row j holds its members
    return merged.argmax(dim=1)                               # each old token -> its new row

# ----------------------------------------------------------------------------- patched model


class _ToMeAttention(vit_ref.Attention):
    def forward(self, x, size=None):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)                        # [B,H,N,d]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        if size is not None:                           # proportional attention: + log(size_j) per key
            attn = attn + size.log()[:, None, None, :, 0]
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x), k.mean(dim=1)             # metric: keys averaged over heads


class _ToMeBlock(vit_ref.Block):
    def forward(self, x):
        info = self._tome_info
        x_attn, metric = self.attn(self.norm1(x), info["size"] if info["prop_attn"] else None)
        x = x + self.ls1(x_attn)
        layer = info["layer"]
        info["layer"] += 1
        x = self._reduce(x, metric, layer, info)
        if info["trace"] is not None:
            info["cluster"].append(info["trace"].clone())
            info["tokens"].append(x.shape[1])
        return x + self.ls2(self.mlp(self.norm2(x)))

    def _reduce(self, x, metric, layer, info):
        """ToMe's merge after attention. Other reducers (pitome_ref) subclass and replace only this,
        so attention, size bookkeeping and tracing stay one implementation."""
        r = info["r"][layer]
        if info["trace"] is not None:
            info["gap"].append(decision_gap(metric, r, info["class_token"], info["distill_token"]))
        if r > 0:
            plan = bipartite_matching(metric, r, info["class_token"], info["distill_token"])
            if plan is not None:
                size = info["size"] if info["size"] is not None else x.new_ones(x.shape[0], x.shape[1], 1)
                if info["trace"] is not None:
                    trace_step(info, merge_positions(plan, x.shape[1], info["distill_token"], x.device))
                x, info["size"] = merge_wavg(x, size, plan, info["distill_token"])
        return x


def trace_step(info, new_pos):
    """Advance the source trace by one merge: new_pos [B,N] is each current token's index after it."""
    info["trace"] = new_pos.gather(1, info["trace"])


class _ToMeVisionTransformer(vit_ref.VisionTransformer):
    def forward(self, x):
        info = self._tome_info
        info.update(size=None, layer=0, cluster=[], tokens=[], gap=[])   # gap: reducers that report one
        n = self.patch_embed.num_patches + self.num_prefix_tokens
        info["trace"] = (torch.arange(n).expand(x.shape[0], n).clone() if info["trace_source"] else None)
        return super().forward(x)


def patch_model(model, block_cls, info, trace_source=False):
    """Swap a vit_ref.VisionTransformer's forward methods in place for a merging reducer's: block_cls
    (a _ToMeBlock subclass) does the merge; info (shared by all blocks) carries its settings plus the
    per-forward state. trace_source=True records, after every block, which output token holds each
    original token (info["cluster"], one [B, N0] tensor per block) and the token count (info["tokens"])."""
    info.update(class_token=model.cls_token is not None, distill_token=model.dist_token is not None,
                trace_source=trace_source)
    model.__class__ = _ToMeVisionTransformer
    model._tome_info = info
    for blk in model.blocks:
        blk.__class__ = block_cls
        blk.attn.__class__ = _ToMeAttention
        blk._tome_info = info
    return model


def apply_tome(model, r, prop_attn=True, trace_source=False):
    """Turn a vit_ref.VisionTransformer into a ToMe model in place (constant r in every block).
    Same parameters; only forward methods change."""
    depth = len(model.blocks)
    rs = list(r) if isinstance(r, (list, tuple)) else [int(r)] * depth
    assert len(rs) == depth, (rs, depth)
    return patch_model(model, _ToMeBlock, {"r": rs, "prop_attn": prop_attn}, trace_source)

# ----------------------------------------------------------------------------- golden


def _canonical(labels):
    """Relabel a partition by order of first appearance, so equal partitions compare equal."""
    seen, out = {}, []
    for v in labels:
        out.append(seen.setdefault(v, len(seen)))
    return out


def check_golden(name, model, g):
    """Run a traced model (patch_model(..., trace_source=True)) on the golden input and compare logits,
    tokens per layer and partitions with the golden setting `name`. Returns (ok, one report line)."""
    x = torch.from_numpy(g["input"])
    with torch.inference_mode():
        out = model(x)
    info = model._tome_info
    ref = torch.from_numpy(g[f"{name}.logits"])
    err = (out - ref).abs().max().item()
    scale = ref.abs().max().item()
    tokens = info["tokens"]
    ref_tokens = g[f"{name}.tokens_per_layer"].tolist()
    ref_cluster = g[f"{name}.cluster_of_token"]                 # [imgs, layers, 197]
    cluster = torch.stack(info["cluster"], dim=1).numpy()        # [imgs, layers, 197]
    bad_parts = [(i, l) for i in range(ref_cluster.shape[0]) for l in range(ref_cluster.shape[1])
                 if _canonical(cluster[i, l].tolist()) != _canonical(ref_cluster[i, l].tolist())]
    top1 = bool((out.argmax(-1) == ref.argmax(-1)).all())
    good = err / scale < 1e-4 and tokens == ref_tokens and not bad_parts
    line = (f"golden {name}: max_abs_err={err:.3e} max|logit|={scale:.3f} rel={err / scale:.3e} "
            f"top1_match={top1} tokens_per_layer={'match' if tokens == ref_tokens else 'MISMATCH'} "
            f"{tokens} partitions={'match' if not bad_parts else f'MISMATCH at (image, layer) {bad_parts[:6]}'} "
            f"images={x.shape[0]} threads={torch.get_num_threads()} -> {'ok' if good else 'FAIL'}")
    if bad_parts and info["gap"]:
        # Say whether the first differing decision of each image was a near-tie in our run (a few ulps:
        # BLAS kernel / thread count decides it) or a clear one (a real difference).
        gap = torch.stack(info["gap"], dim=1)                   # [imgs, layers]
        first = {}
        for i, l in bad_parts:
            first.setdefault(i, l)
        line += "".join(f"\n  image {i}: first differs after block {l}; smallest decision gap in that block "
                        f"{gap[i, l].item():.2e}" for i, l in first.items())
    return good, line


def cmd_golden(a):
    g, meta = vit_ref.read_safetensors(a.golden)
    settings = json.loads(meta.get("settings", "{}"))
    ok = True
    for name in a.setting:
        s = settings.get(name)
        if s is None or s.get("method") not in ("tome", "none"):
            print(f"golden {name}: not a ToMe setting in {a.golden}")
            return 2
        model, _ = vit_ref.load_model(a.model)
        apply_tome(model, s.get("r", 0), prop_attn=s.get("prop_attn", True), trace_source=True)
        good, line = check_golden(name, model, g)
        ok &= good
        print(line)
    return 0 if ok else 1

# ----------------------------------------------------------------------------- bench


def cmd_bench(a):
    torch.set_num_threads(a.threads)
    if a.random_weights:
        model, cfg = vit_ref.random_model(a.random_weights)
    else:
        model, cfg = vit_ref.load_model(a.model)
    if a.r > 0:
        apply_tome(model, a.r, prop_attn=not a.no_prop_attn)
    times = vit_ref.time_forward(model, cfg, a.batch, a.warmup, a.repeat)
    med_ms = 1000.0 * statistics.median(times)
    name = a.random_weights or os.path.basename(os.path.normpath(a.model))
    print(json.dumps({"engine": "pytorch-eager", "model": name,
                      "method": f"tome:r={a.r}" + (",prop_attn=0" if a.no_prop_attn else "") if a.r else "none",
                      "batch": a.batch, "threads": torch.get_num_threads(), "median_ms": round(med_ms, 3),
                      "min_ms": round(1000.0 * min(times), 3), "max_ms": round(1000.0 * max(times), 3),
                      "images_per_s": round(a.batch / (med_ms / 1000.0), 2)}))
    return 0

# ----------------------------------------------------------------------------- parts


def _time(fn, repeat):
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1000.0 * statistics.median(ts)


def cmd_parts(a):
    """Time each eager op of one timm block (as vit_ref runs it) at the given token counts."""
    torch.set_num_threads(a.threads)
    model, _ = vit_ref.random_model(a.random_weights)
    blk = model.blocks[0]
    at, H = blk.attn, blk.attn.num_heads
    rows = {}
    with torch.inference_mode():
        for n in a.tokens:
            B, C = a.batch, model.pos_embed.shape[-1]
            x = torch.randn(B, n, C, generator=torch.Generator().manual_seed(0))
            h = blk.norm1(x)
            qkv_out = at.qkv(h)
            q, k, v = qkv_out.reshape(B, n, 3, H, at.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
            s = q @ k.transpose(-2, -1)
            ss = s * at.scale
            p = ss.softmax(dim=-1)
            o = p @ v
            o2 = o.transpose(1, 2).reshape(B, n, C)
            y = at.proj(o2)
            h2 = blk.norm2(x)
            f1 = blk.mlp.fc1(h2)
            g1 = blk.mlp.act(f1)
            size = torch.ones(B, n, 1)
            plan = bipartite_matching(k.mean(dim=1), 13, True, False)
            ops = [
                ("norm1", lambda: blk.norm1(x)),
                ("qkv linear", lambda: at.qkv(h)),
                ("q@k^T (N^2)", lambda: q @ k.transpose(-2, -1)),
                ("* scale (N^2)", lambda: s * at.scale),
                ("softmax (N^2)", lambda: ss.softmax(dim=-1)),
                ("attn@v (N^2)", lambda: p @ v),
                ("transpose+reshape", lambda: o.transpose(1, 2).reshape(B, n, C)),
                ("proj linear", lambda: at.proj(o2)),
                ("residual add", lambda: x + y),
                ("norm2", lambda: blk.norm2(x)),
                ("fc1 linear", lambda: blk.mlp.fc1(h2)),
                ("GELU", lambda: blk.mlp.act(f1)),
                ("fc2 linear", lambda: blk.mlp.fc2(g1)),
                ("+ log(size) (ToMe, N^2)", lambda: ss + size.log()[:, None, None, :, 0]),
                ("ToMe match r=13", lambda: bipartite_matching(k.mean(dim=1), 13, True, False)),
                ("ToMe merge_wavg r=13", lambda: merge_wavg(x, size, plan, False)),
                ("whole block (timm)", lambda: blk(x)),
            ]
            for name, fn in ops:
                rows.setdefault(name, {})[n] = _time(fn, a.repeat)
    n0, n1 = a.tokens[0], a.tokens[-1]
    print(f"{a.random_weights}  batch {a.batch}  threads {torch.get_num_threads()}  one block, "
          f"median of {a.repeat} runs (ms)")
    print(f"{'op':28s} " + " ".join(f"{'N=' + str(n):>10s}" for n in a.tokens) + f" {'ratio':>7s}")
    for name, t in rows.items():
        print(f"{name:28s} " + " ".join(f"{t[n]:10.2f}" for n in a.tokens) + f" {t[n0] / t[n1]:6.2f}x")
    print(f"token ratio N0/N1 = {n0 / n1:.2f}, squared = {(n0 / n1) ** 2:.2f}")
    return 0

# ----------------------------------------------------------------------------- main


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("golden", help="ToMe logits / tokens / partitions vs. the golden reference")
    s.add_argument("--model", default="/work/shared/models/deit_tiny_patch16_224")
    s.add_argument("--golden", default="/work/shared/golden/deit_tiny_merge_reference.safetensors")
    s.add_argument("--setting", action="append",
                   help="golden setting(s) to check (default: tome_r8 tome_r13 tome_r16_noprop none)")
    s.set_defaults(fn=cmd_golden)

    s = sub.add_parser("bench", help="eager PyTorch throughput, optionally with ToMe")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--model")
    g.add_argument("--random-weights", metavar="ARCH")
    s.add_argument("--r", type=int, default=0, help="ToMe r per block (0 = no merging)")
    s.add_argument("--no-prop-attn", action="store_true")
    s.add_argument("--batch", type=int, default=32)
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--warmup", type=int, default=1)
    s.add_argument("--repeat", type=int, default=5)
    s.set_defaults(fn=cmd_bench)

    s = sub.add_parser("parts", help="per-op time of one eager block at several token counts")
    s.add_argument("--random-weights", metavar="ARCH", default="vit_base_patch16_224")
    s.add_argument("--tokens", type=int, nargs="+", default=[197, 125])
    s.add_argument("--batch", type=int, default=32)
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--repeat", type=int, default=7)
    s.set_defaults(fn=cmd_parts)

    traces.add_parser(sub)

    a = p.parse_args(argv)
    if a.cmd == "golden" and not a.setting:
        a.setting = ["tome_r8", "tome_r13", "tome_r16_noprop", "none"]
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
