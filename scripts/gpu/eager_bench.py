#!/usr/bin/env python3
"""Eager PyTorch throughput of a random-weight ViT with the same token reducers as mergescope, for
scripts/gpu_check.sh: the baseline a researcher would run (timm's VisionTransformer, eager mode, no compile).

Backbone: timm's VisionTransformer (timm.create_model(ARCH, pretrained=False), timm's own random init) when timm is
installed; otherwise scripts/pyref/vit_ref.py's timm-equivalent ViT (same module names), e.g. on a machine without
timm (the CPU rehearsal). Each JSON line says which one ran.

Methods (mergescope's spec strings):
  none              the backbone's own forward (timm: fused scaled_dot_product_attention)
  tome:r=R          ToMe (Bolya et al., ICLR 2023): after each block's attention, keys averaged over heads; A = even
                    tokens, B = odd; every A's most similar B by cosine; the r best edges merge (size-weighted mean);
                    CLS never merges; proportional attention (+ log size on every key's logit). Matching and merging
                    are scripts/pyref/tome_ref.py's (bipartite_matching, merge_wavg).
  pitome:ratio=P    PiToMe as the paper writes it (Tran et al., NeurIPS 2024): over the T non-CLS tokens, energy
                    E_i = 1/T sum_{j != i} f_m(cos(k_i, k_j)), f_m(x) = x if x >= m else exp(x - m) - 1, margin
                    m_l = 0.9 - 0.9 l / L; k = floor(T - T P) removed per block: the 2k highest-energy tokens alternate
                    into A and B along the energy order, every A merges into its most similar B, the rest are kept;
                    output [CLS, kept (energy order), B]; proportional attention. Written here from the paper's
                    definitions (as core/reduce/pitome.cpp states them).
  pitome-code:ratio=P  the released-code variant (scripts/pyref/pitome_ref.py's plan), no proportional attention.
The reduced blocks run the backbone's own modules (norm1, attn.qkv, attn.proj, ls1, norm2, mlp, ls2, norm, head);
attention is torch's scaled_dot_product_attention where it exists (torch >= 2.0; the log-size bias as a float mask),
else the explicit softmax(q k^T / sqrt(d) + bias) v.

Methods take turns within every repeat (as `mergescope-cli bench` does). One JSON line per method on stdout.
usage: eager_bench.py --arch vit_base_patch16_224 [--batch 256] [--device cuda] [--dtype fp32|bf16]
                      --method none --method tome:r=13 --method pitome:ratio=0.9144 [--warmup 1] [--repeat 3]
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "pyref"))
import pitome_ref  # noqa: E402  (merge_wavg with a (keep, src, dst) plan; the released-code plan)
import tome_ref    # noqa: E402  (ToMe's bipartite_matching and merge_wavg)

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")

# ----------------------------------------------------------------------------- backbone


def build_model(arch, device, dtype, use_timm=True):
    """(model, backbone description). timm when installed (and use_timm), else pyref's vit_ref."""
    timm = None
    if use_timm:
        try:
            import timm  # noqa: F811
        except ImportError:
            timm = None
    if timm is not None:
        if device.type == "cuda" and hasattr(torch, "get_default_device"):
            with torch.device(device):  # timm's random init on the GPU: seconds instead of a minute for ViT-L
                model = timm.create_model(arch, pretrained=False)
        else:
            model = timm.create_model(arch, pretrained=False)
        backbone = f"timm {timm.__version__} VisionTransformer (timm's random init)"
    else:
        import vit_ref
        model, _ = vit_ref.random_model(arch)
        backbone = "scripts/pyref/vit_ref.py ViT (timm not installed)"
    return model.to(device=device, dtype=dtype).eval(), backbone


def embed(model, x):
    """Tokens entering block 0 ([CLS, patches] + position embedding), as the backbone's own forward makes them."""
    if hasattr(model, "_pos_embed"):  # timm
        x = model.patch_embed(x)
        x = model._pos_embed(x)
        x = model.patch_drop(x) if hasattr(model, "patch_drop") else x
        return model.norm_pre(x) if hasattr(model, "norm_pre") else x
    x = model.patch_embed(x)  # vit_ref
    prefix = [t.expand(x.shape[0], -1, -1) for t in (model.cls_token, model.dist_token) if t is not None]
    return torch.cat(prefix + [x], dim=1) + model.pos_embed


def num_prefix(model):
    return int(getattr(model, "num_prefix_tokens", 1))

# ----------------------------------------------------------------------------- reduced block


def attention(attn, x, log_size):
    """The block's attention with its own weights; returns (output, keys averaged over heads)."""
    B, N, C = x.shape
    H = attn.num_heads
    qkv = attn.qkv(x).reshape(B, N, 3, H, C // H).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)  # [B,H,N,d]
    if hasattr(attn, "q_norm"):
        q, k = attn.q_norm(q), attn.k_norm(k)
    bias = None if log_size is None else log_size[:, None, None, :].to(q.dtype)  # + log size_j on every logit
    if HAS_SDPA:
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    else:
        logits = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
        if bias is not None:
            logits = logits + bias
        o = logits.softmax(dim=-1) @ v
    o = o.transpose(1, 2).reshape(B, N, C)
    if hasattr(attn, "norm"):
        o = attn.norm(o)
    return attn.proj(o), k.mean(dim=1)


def pitome_paper_plan(metric, k, layer, depth, prefix):
    """(keep [B,N'], src [B,k], dst [B,k]) in current token indices, prefix tokens first: the paper's PiToMe step."""
    bs = metric.shape[0]
    m = F.normalize(metric[:, prefix:].float(), dim=-1)
    sim = m @ m.transpose(-1, -2)  # [B,T,T] cosine similarities
    t = sim.shape[1]
    margin = 0.9 - 0.9 * layer / depth
    f = torch.where(sim >= margin, sim, torch.exp(sim - margin) - 1.0)
    f.diagonal(dim1=1, dim2=2).zero_()  # j != i, but 1/T over all T
    energy = f.sum(dim=-1) / t
    order = energy.argsort(dim=-1, descending=True)
    cand, protect = order[:, :2 * k], order[:, 2 * k:]
    a_idx, b_idx = cand[:, ::2], cand[:, 1::2]
    rows = sim.gather(1, a_idx[..., None].expand(bs, a_idx.shape[1], t))
    scores = rows.gather(2, b_idx[:, None, :].expand(bs, a_idx.shape[1], b_idx.shape[1]))
    dst = scores.argmax(dim=-1) + protect.shape[1]
    keep = torch.cat([protect, b_idx], dim=1)
    pre = torch.arange(prefix, device=metric.device).expand(bs, prefix)
    return torch.cat([pre, keep + prefix], dim=1), a_idx + prefix, dst + prefix


class Reducer:
    """One method spec: what happens between a block's attention and its MLP."""

    def __init__(self, spec):
        self.spec = spec
        name, _, args = spec.partition(":")
        kv = dict(a.split("=", 1) for a in args.split(",") if a)
        self.name = name
        if name == "none":
            self.prop_attn = False
        elif name == "tome":
            self.r = int(kv["r"])
            self.prop_attn = kv.get("prop_attn", "1") != "0"
        elif name in ("pitome", "pitome-code"):
            self.ratio = float(kv["ratio"])
            self.prop_attn = name == "pitome"
        else:
            raise SystemExit(f"eager_bench.py: unsupported method spec {spec!r}")

    def reduce(self, x, size, metric, layer, depth, prefix):
        if self.name == "tome":
            plan = tome_ref.bipartite_matching(metric, self.r, prefix > 0, prefix > 1)
            return (x, size) if plan is None else tome_ref.merge_wavg(x, size, plan, prefix > 1)
        k = pitome_ref.removed(x.shape[1] - prefix, self.ratio)
        if k <= 0:
            return x, size
        if self.name == "pitome":
            plan = pitome_paper_plan(metric, k, layer, depth, prefix)
        else:
            plan = pitome_ref.pitome_code_plan(metric.float(), k, layer, depth, prefix)[:3]
        return pitome_ref.merge_wavg(x, size, plan)


def forward(model, images, reducer, tokens):
    """Logits of the backbone with `reducer` between attention and MLP of every block (None: the backbone's own
    forward). Appends the token count after every block to `tokens`."""
    if reducer is None or reducer.name == "none":
        return model(images)
    x = embed(model, images)
    prefix, depth = num_prefix(model), len(model.blocks)
    size = None
    for layer, blk in enumerate(model.blocks):
        log_size = size[..., 0].log() if (reducer.prop_attn and size is not None) else None
        y, metric = attention(blk.attn, blk.norm1(x), log_size)
        x = x + blk.ls1(y)
        if size is None:
            size = x.new_ones(x.shape[0], x.shape[1], 1)
        x, size = reducer.reduce(x, size, metric, layer, depth, prefix)
        tokens.append(x.shape[1])
        x = x + blk.ls2(blk.mlp(blk.norm2(x)))
    return model.forward_head(model.norm(x))

# ----------------------------------------------------------------------------- bench


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True, help="timm architecture name, e.g. vit_base_patch16_224")
    p.add_argument("--method", action="append", required=True, help="method spec (repeatable)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--no-timm", action="store_true", help="use pyref's ViT even when timm is installed")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("eager_bench.py: --device cuda but torch.cuda.is_available() is False")
        # fp32 means fp32: no TF32 in matmuls or in the patch-embedding convolution (mergescope uses neither).
        if hasattr(torch.backends.cuda.matmul, "fp32_precision"):  # torch >= 2.9
            torch.backends.cuda.matmul.fp32_precision = "ieee"
            torch.backends.cudnn.conv.fp32_precision = "ieee"
        else:
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
    t0 = time.perf_counter()
    model, backbone = build_model(a.arch, device, dtype, use_timm=not a.no_timm)
    build_s = time.perf_counter() - t0
    img = model.patch_embed.img_size if hasattr(model.patch_embed, "img_size") else None
    side = img[0] if isinstance(img, (tuple, list)) else int(a.arch.rsplit("_", 1)[-1])
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(a.batch, 3, side, side, generator=gen).to(device=device, dtype=dtype)
    reducers = [Reducer(s) for s in a.method]
    # The reduced forward with nothing to merge (ToMe r=0) must equal the backbone's own forward: checks that the
    # patched blocks use the backbone's modules as the backbone does (on the first few images).
    with torch.inference_mode():
        sub = images[:8]
        ref = model(sub).float()
        own = forward(model, sub, Reducer("tome:r=0"), []).float()
        patch_err = ((own - ref).abs().max() / ref.abs().max()).item()
    tol = 1e-4 if dtype == torch.float32 else 5e-2
    if not patch_err < tol:
        raise SystemExit(f"eager_bench.py: the patched forward differs from the backbone's by {patch_err:.2e} "
                         f"(relative, tolerance {tol:g})")
    times = {r.spec: [] for r in reducers}
    tokens = {}
    with torch.inference_mode():
        for i in range(a.warmup + a.repeat):
            for r in reducers:
                toks = []
                sync(device)
                t = time.perf_counter()
                out = forward(model, images, r, toks)
                sync(device)
                dt = time.perf_counter() - t
                if not bool(torch.isfinite(out.float()).all()):
                    raise SystemExit(f"eager_bench.py: {r.spec} gave non-finite logits")
                tokens[r.spec] = toks
                if i >= a.warmup:
                    times[r.spec].append(dt)
    for r in reducers:
        ts = times[r.spec]
        med = statistics.median(ts)
        print(json.dumps({
            "engine": "pytorch-eager", "backbone": backbone,
            "attention": "none: backbone's own" if r.name == "none" else ("sdpa" if HAS_SDPA else "explicit softmax"),
            "torch": torch.__version__, "model": a.arch, "method": r.spec, "batch": a.batch, "dtype": a.dtype,
            "device": str(device), "threads": torch.get_num_threads(), "median_ms": round(1000 * med, 3),
            "min_ms": round(1000 * min(ts), 3), "max_ms": round(1000 * max(ts), 3),
            "images_per_s": round(a.batch / med, 2), "tokens_per_layer": tokens.get(r.spec) or None,
            "model_build_s": round(build_s, 2), "patched_vs_backbone_rel_err": float(f"{patch_err:.2e}")}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
