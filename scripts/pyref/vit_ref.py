#!/usr/bin/python3
"""Python reference for mergescope: a timm-equivalent eager ViT/DeiT in plain PyTorch.

Provides the numbers the C++/LibTorch engine is checked against:
  golden      logits of the golden input vs. the stored reference logits
  eval        top-1/top-5 over an ImageNet sample with timm's eval preprocessing
  preprocess  dump one preprocessed image as raw float32 [3,H,W] (little-endian)
  bench       eager PyTorch throughput (the baseline a researcher would run)

Needs only torch, torchvision, PIL and numpy (no timm, no safetensors package).
Run with the system interpreter: /usr/bin/python3 scripts/pyref/vit_ref.py SUBCOMMAND ...
"""
import argparse
import json
import math
import os
import re
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn

# ----------------------------------------------------------------------------- safetensors

_ST_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_,
}


def read_safetensors(path):
    """Return ({name: np.ndarray}, metadata dict). BF16 is widened to float32
    (numpy has no bfloat16; bf16 is the top half of an f32, so this is exact)."""
    with open(path, "rb") as f:
        buf = f.read()
    (hlen,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + hlen].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + hlen
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dt = info["dtype"]
        if dt not in _ST_DTYPES:
            raise ValueError(f"{path}: unsupported dtype {dt} for {name}")
        # Data is little-endian by spec; say so explicitly, then copy to native order
        # (the copy also makes the array writable, which torch.from_numpy wants).
        le = np.dtype(_ST_DTYPES[dt]).newbyteorder("<")
        arr = np.frombuffer(buf, dtype=le, count=(end - begin) // le.itemsize, offset=base + begin)
        arr = arr.astype(le.newbyteorder("="))
        if dt == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = arr.reshape(info["shape"])
    return tensors, meta


def write_safetensors(path, tensors, metadata=None):
    """Write {name: np.ndarray} as plain safetensors (the format read_safetensors reads): tensors
    back to back in the given order, little-endian, header padded with spaces to a multiple of 8
    (keeps the data aligned). Metadata values must be strings, as the format requires."""
    names = {np.dtype(t): n for n, t in _ST_DTYPES.items() if n != "BF16"}  # uint16 means U16 here
    header, blobs, offset = {}, [], 0
    if metadata:
        assert all(isinstance(v, str) for v in metadata.values()), "metadata values must be str"
        header["__metadata__"] = dict(metadata)
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        if arr.dtype.newbyteorder("=") not in names:
            raise ValueError(f"{name}: no safetensors dtype for {arr.dtype}")
        data = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": names[arr.dtype.newbyteorder("=")], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for data in blobs:
            f.write(data)


def load_state_dict(path):
    tensors, _ = read_safetensors(path)
    return {k: torch.from_numpy(v) for k, v in tensors.items()}

# ----------------------------------------------------------------------------- model


class PatchEmbed(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        self.grid = img_size // patch_size
        self.num_patches = self.grid * self.grid
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)

    def forward(self, x):
        # [B,C,H,W] -> [B,D,h,w] -> [B,h*w,D], patches in row-major order
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)                      # each [B,H,N,d]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = attn @ v
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()                         # exact (erf) GELU, as timm's default
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio, qkv_bias, eps, layer_scale):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.ls1 = LayerScale(dim) if layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim) if layer_scale else nn.Identity()

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))
        x = x + self.ls2(self.mlp(self.norm2(x)))
        return x


class VisionTransformer(nn.Module):
    """Parameter names match timm's VisionTransformer (and VisionTransformerDistilled),
    so a timm state dict loads with strict=True."""

    def __init__(self, img_size=224, patch_size=16, in_chans=3, num_classes=1000, embed_dim=768,
                 depth=12, num_heads=12, mlp_ratio=4.0, qkv_bias=True, class_token=True,
                 global_pool="token", fc_norm=None, norm_eps=1e-6, distilled=False,
                 layer_scale=False):
        super().__init__()
        assert global_pool in ("token", "avg"), global_pool
        self.global_pool = global_pool
        self.distilled = distilled
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if distilled else None
        self.num_prefix_tokens = int(class_token) + int(distilled)
        self.pos_embed = nn.Parameter(
            torch.zeros(1, self.patch_embed.num_patches + self.num_prefix_tokens, embed_dim))
        self.blocks = nn.Sequential(*[
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, norm_eps, layer_scale)
            for _ in range(depth)])
        # timm: fc_norm defaults to on for avg pooling; then the final `norm` becomes Identity.
        use_fc_norm = global_pool == "avg" if fc_norm is None else fc_norm
        self.norm = nn.Identity() if use_fc_norm else nn.LayerNorm(embed_dim, eps=norm_eps)
        self.fc_norm = nn.LayerNorm(embed_dim, eps=norm_eps) if use_fc_norm else nn.Identity()
        self.head = nn.Linear(embed_dim, num_classes)
        self.head_dist = nn.Linear(embed_dim, num_classes) if distilled else None

    def forward_features(self, x):
        x = self.patch_embed(x)
        prefix = [t.expand(x.shape[0], -1, -1) for t in (self.cls_token, self.dist_token)
                  if t is not None]
        x = torch.cat(prefix + [x], dim=1) + self.pos_embed   # [CLS, (DIST), patches]
        return self.norm(self.blocks(x))

    def forward_head(self, x):
        if self.distilled:
            # DeiT inference: average of class-token head and distillation-token head.
            return (self.head(x[:, 0]) + self.head_dist(x[:, 1])) / 2
        if self.global_pool == "avg":
            x = x[:, self.num_prefix_tokens:].mean(dim=1)
        else:
            x = x[:, 0]
        return self.head(self.fc_norm(x))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def read_config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)


def load_model(model_dir):
    """Build from config.json model_args; distillation / LayerScale / fc_norm are inferred
    from which tensors model.safetensors actually contains."""
    cfg = read_config(model_dir)
    sd = load_state_dict(os.path.join(model_dir, "model.safetensors"))
    args = dict(cfg.get("model_args", {}))
    args.setdefault("num_classes", cfg.get("num_classes", 1000))
    args["distilled"] = "dist_token" in sd
    args["layer_scale"] = "blocks.0.ls1.gamma" in sd
    if "fc_norm" not in args:
        args["fc_norm"] = "fc_norm.weight" in sd
    model = VisionTransformer(**args)
    model.load_state_dict(sd, strict=True)
    return model.eval(), cfg


_SIZES = {  # name: (embed_dim, depth, num_heads)
    "tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12),
    "large": (1024, 24, 16), "huge": (1280, 32, 16),
}


def random_model(arch_name, seed=0):
    """Model with timm-shaped random weights for benchmarking, e.g. 'vit_large_patch16_384'.
    Matrices/embeddings ~ N(0, 0.02), biases 0, LayerNorm weight 1 (so activations stay sane)."""
    m = re.fullmatch(r"(?:vit|deit)_(tiny|small|base|large|huge)_(distilled_)?patch(\d+)_(\d+)",
                     arch_name)
    if not m:
        raise ValueError(f"cannot parse architecture name {arch_name!r}")
    dim, depth, heads = _SIZES[m.group(1)]
    model = VisionTransformer(img_size=int(m.group(4)), patch_size=int(m.group(3)),
                              embed_dim=dim, depth=depth, num_heads=heads,
                              distilled=bool(m.group(2)))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    cfg = {"architecture": arch_name, "pretrained_cfg": {
        "input_size": [3, int(m.group(4)), int(m.group(4))], "crop_pct": 0.875,
        "interpolation": "bicubic", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}
    return model.eval(), cfg

# ----------------------------------------------------------------------------- preprocessing


def make_transform(cfg):
    """timm eval transform: short-side resize to floor(img_size / crop_pct), center crop,
    ToTensor, Normalize (crop_mode 'center')."""
    from torchvision import transforms as T
    pc = cfg["pretrained_cfg"]
    img_size = pc["input_size"][-1] if "input_size" in pc else cfg["model_args"]["img_size"]
    interp = {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR,
              "nearest": T.InterpolationMode.NEAREST}[pc.get("interpolation", "bicubic")]
    scale_size = math.floor(img_size / pc.get("crop_pct", 0.875))
    return T.Compose([
        T.Resize(scale_size, interpolation=interp),   # int size -> resize the short side
        T.CenterCrop(img_size),
        T.ToTensor(),
        T.Normalize(pc["mean"], pc["std"]),
    ])


def list_images(folder):
    """Image file names of a folder in sorted order (the order every per-image output uses)."""
    return sorted(f for f in os.listdir(folder) if f.lower().endswith((".jpeg", ".jpg", ".png")))


def load_image(path, transform):
    from PIL import Image
    with Image.open(path) as im:
        return transform(im.convert("RGB"))

# ----------------------------------------------------------------------------- subcommands


def cmd_golden(a):
    model, _ = load_model(a.model)
    g, _ = read_safetensors(a.golden)
    ref = torch.from_numpy(g[f"{a.setting}.logits"])
    with torch.inference_mode():
        out = model(torch.from_numpy(g["input"]))
    err = (out - ref).abs().max().item()
    scale = ref.abs().max().item()
    same_top1 = bool((out.argmax(-1) == ref.argmax(-1)).all())
    print(f"golden {a.setting}: max_abs_err={err:.3e} max|logit|={scale:.3f} "
          f"rel={err / scale:.3e} top1_match={same_top1}")
    return 0 if err / scale < 1e-4 else 1


def _wnid_index(labels_path):
    with open(labels_path) as f:
        return {line.split()[0]: i for i, line in enumerate(f) if line.strip()}


def cmd_eval(a):
    t0 = time.perf_counter()
    torch.set_num_threads(a.threads or torch.get_num_threads())
    model, cfg = load_model(a.model)
    tf = make_transform(cfg)
    wnids = _wnid_index(a.labels)
    files = list_images(a.images)
    results, top1, top5 = [], 0, 0
    for i in range(0, len(files), a.batch):
        chunk = files[i:i + a.batch]
        x = torch.stack([load_image(os.path.join(a.images, f), tf) for f in chunk])
        with torch.inference_mode():
            pred = model(x).topk(5, dim=-1).indices.tolist()
        for f, p in zip(chunk, pred):
            label = wnids[f.split("_")[0]]            # files are <wnid>_<name>.JPEG
            top1 += p[0] == label
            top5 += label in p
            results.append({"file": f, "label": label, "top5": p})
    n = len(results)
    summary = {"model": os.path.basename(os.path.normpath(a.model)),  # names the weights too
               "top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n, "n": n}
    if a.json:
        with open(a.json, "w") as f:
            json.dump({**summary, "images": results}, f)
    print(f"eval {summary['model']}: top1={summary['top1']:.2f}% top5={summary['top5']:.2f}% "
          f"n={n} ({time.perf_counter() - t0:.1f}s)")
    return 0


def cmd_preprocess(a):
    cfg = read_config(a.model)
    x = load_image(a.image, make_transform(cfg))
    x.numpy().astype("<f4").tofile(a.out)
    print(f"wrote {a.out}: float32 {list(x.shape)} mean={x.mean().item():.6f}")
    return 0


def time_forward(model, cfg, batch, warmup, repeat, dtype="fp32"):
    """Seconds of each timed forward on a fixed random batch, after `warmup` untimed ones. dtype bf16: CPU
    autocast to bfloat16, the way eager PyTorch users run bf16 (linear layers and matmuls in bf16)."""
    size = cfg["pretrained_cfg"]["input_size"]
    x = torch.randn(batch, *size, generator=torch.Generator().manual_seed(0))
    times = []
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")
    with torch.inference_mode(), autocast:
        for i in range(warmup + repeat):
            t = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - t)
    return times


def cmd_bench(a):
    torch.set_num_threads(a.threads)
    if a.random_weights:
        model, cfg = random_model(a.random_weights)
    else:
        model, cfg = load_model(a.model)
    times = time_forward(model, cfg, a.batch, a.warmup, a.repeat, a.dtype)
    med_ms = 1000.0 * statistics.median(times)
    name = a.random_weights or os.path.basename(os.path.normpath(a.model))
    print(json.dumps({"engine": "pytorch-eager", "model": name,
                      "batch": a.batch, "threads": a.threads, "dtype": a.dtype, "median_ms": round(med_ms, 3),
                      "images_per_s": round(a.batch / (med_ms / 1000.0), 2)}))
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("golden", help="compare logits on the golden input")
    s.add_argument("--model", required=True)
    s.add_argument("--golden", required=True)
    s.add_argument("--setting", default="none", help="golden setting whose logits to compare")
    s.set_defaults(fn=cmd_golden)

    s = sub.add_parser("eval", help="top-1/top-5 over a folder of <wnid>_<name>.JPEG")
    s.add_argument("--model", required=True)
    s.add_argument("--images", required=True)
    s.add_argument("--labels", required=True, help="synset_words.txt (line number = class)")
    s.add_argument("--json")
    s.add_argument("--batch", type=int, default=50)
    s.add_argument("--threads", type=int, default=0, help="0 = torch default")
    s.set_defaults(fn=cmd_eval)

    s = sub.add_parser("preprocess", help="write one preprocessed image as raw f32 [3,H,W]")
    s.add_argument("--model", required=True)
    s.add_argument("image")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_preprocess)

    s = sub.add_parser("bench", help="eager PyTorch throughput")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--model")
    g.add_argument("--random-weights", metavar="ARCH")
    s.add_argument("--batch", type=int, default=1)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--warmup", type=int, default=3)
    s.add_argument("--repeat", type=int, default=10)
    s.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    s.set_defaults(fn=cmd_bench)

    a = p.parse_args(argv)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
