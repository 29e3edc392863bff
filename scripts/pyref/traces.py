#!/usr/bin/python3
"""Source traces of a merging reducer on real images, for comparing mergescope's C++ traces with the
Python stack (PIL decoding + torchvision preprocessing + eager PyTorch).

For every image of a folder (sorted file names) it records, after every block, which output token holds
each original token, in the golden file's layout, and writes a plain safetensors file:
    cluster_of_token  [images, layers, tokens] int64  after block l, the output-token index of original
                                                      token t (0 = CLS, then patches row-major)
    tokens_per_layer  [images, layers] int64          tokens leaving each block
    logits            [images, classes] float32
    __metadata__      images (JSON list of file names), method (the spec), model (folder name),
                      preprocessing
Index values follow this reference's output order; compare partitions, not raw ids.

Methods (spec strings as mergescope's): tome:r=N[,prop_attn=0]  (tome_ref.py)
                                        pitome-code:ratio=X      (pitome_ref.py)
Merging is per image, so the batch size does not change the partitions (--batch is there to check that).

Used as the `traces` subcommand of tome_ref.py and pitome_ref.py, or directly:
    /usr/bin/python3 scripts/pyref/traces.py --model DIR --images DIR --method SPEC --out FILE.safetensors
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vit_ref  # noqa: E402

PREPROCESSING = "PIL + torchvision, vit_ref.make_transform"
TIE_THRESHOLDS = (1e-5, 1e-6, 1e-7)   # 1e-5: mergescope's kTieTolerance; 1e-7: a few float32 ulps


def parse_method(spec):
    """'name:key=value,key=value' -> (name, {key: value}); values stay strings."""
    name, _, rest = spec.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"method spec {spec!r}: {item!r} is not key=value")
        params[key.strip()] = value.strip()
    return name.strip(), params


def _bool(value):
    if value in ("1", "true", "on"):
        return True
    if value in ("0", "false", "off"):
        return False
    raise ValueError(f"{value!r} is not a boolean (use 0 or 1)")


def apply_method(model, spec):
    """Patch model in place for the reducer `spec`, with source tracing on.
    The reducer modules are imported here, not at the top, because both of them import this file."""
    name, p = parse_method(spec)
    allowed = {"tome": {"r", "prop_attn"}, "pitome-code": {"ratio"}}
    if name not in allowed:
        raise ValueError(f"method spec {spec!r}: unknown method {name!r} (tome, pitome-code)")
    if set(p) - allowed[name]:
        raise ValueError(f"method spec {spec!r}: unknown keys {sorted(set(p) - allowed[name])}")
    if name == "tome":
        import tome_ref
        if "r" not in p:
            raise ValueError(f"method spec {spec!r}: tome needs r=N")
        return tome_ref.apply_tome(model, int(p["r"]), prop_attn=_bool(p.get("prop_attn", "1")),
                                   trace_source=True)
    import pitome_ref
    if "ratio" not in p:
        raise ValueError(f"method spec {spec!r}: pitome-code needs ratio=X")
    return pitome_ref.apply_pitome_code(model, float(p["ratio"]), trace_source=True)


def trace_images(model, cfg, folder, files, batch):
    """Run the traced model over the images in batches. Returns numpy (cluster [n, L, N0] int64,
    tokens [n, L] int64, logits [n, classes] float32, gap [n, L] float32: each block's smallest
    decision gap, see tome_ref.decision_gap)."""
    tf = vit_ref.make_transform(cfg)
    clusters, tokens, logits, gaps = [], [], [], []
    for i in range(0, len(files), batch):
        chunk = files[i:i + batch]
        x = torch.stack([vit_ref.load_image(os.path.join(folder, f), tf) for f in chunk])
        with torch.inference_mode():
            out = model(x)
        info = model._tome_info
        clusters.append(torch.stack(info["cluster"], dim=1))                 # [b, L, N0]
        # Counts are per batch; these reducers remove a fixed number per image, so they hold per image.
        tokens.append(torch.tensor(info["tokens"], dtype=torch.long).expand(len(chunk), -1))
        logits.append(out.float())
        gaps.append(torch.stack(info["gap"], dim=1))
    return (torch.cat(clusters).numpy().astype(np.int64), torch.cat(tokens).numpy().astype(np.int64),
            torch.cat(logits).numpy().astype(np.float32), torch.cat(gaps).numpy().astype(np.float32))


def cmd_traces(a):
    t0 = time.perf_counter()
    torch.set_num_threads(a.threads)
    files = vit_ref.list_images(a.images)
    if a.limit:
        files = files[:a.limit]
    if not files:
        print(f"traces: no images in {a.images}")
        return 2
    model, cfg = vit_ref.load_model(a.model)
    apply_method(model, a.method)
    cluster, tokens, logits, gap = trace_images(model, cfg, a.images, files, a.batch)
    tensors = {"cluster_of_token": cluster, "tokens_per_layer": tokens, "logits": logits}
    meta = {"images": json.dumps(files), "method": a.method,
            "model": os.path.basename(os.path.normpath(a.model)), "preprocessing": PREPROCESSING}
    if os.path.dirname(a.out):
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
    vit_ref.write_safetensors(a.out, tensors, meta)

    # Reader-side check: what a consumer reads back is what was computed.
    back, back_meta = vit_ref.read_safetensors(a.out)
    n, layers = len(files), len(model.blocks)
    n0 = model.patch_embed.num_patches + model.num_prefix_tokens
    expect = {"cluster_of_token": ((n, layers, n0), np.int64), "tokens_per_layer": ((n, layers), np.int64),
              "logits": ((n, logits.shape[1]), np.float32)}
    problems = [f"{k}: {back[k].shape} {back[k].dtype}, expected {s} {np.dtype(d)}"
                for k, (s, d) in expect.items()
                if k not in back or back[k].shape != s or back[k].dtype != d or not np.array_equal(back[k], tensors[k])]
    if set(back) != set(expect):
        problems.append(f"tensors {sorted(back)}, expected {sorted(expect)}")
    if back_meta != meta or json.loads(back_meta["images"]) != files:
        problems.append("metadata does not read back as written")
    if problems:
        print(f"traces: {a.out} fails the read-back check: {problems}")
        return 1
    dt = time.perf_counter() - t0
    print(f"traces {meta['model']} {a.method}: {n} images, tokens_per_layer {tokens[0].tolist()}, "
          f"wrote {a.out} ({os.path.getsize(a.out)} bytes, read back ok); {dt:.1f}s "
          f"({n / dt:.1f} images/s, batch {a.batch}, threads {torch.get_num_threads()})")
    # Partitions after a near-tied decision depend on BLAS kernel and thread count (not on this code);
    # say how many images have one, so disagreements with another stack can be read against it.
    smallest = gap.min(axis=1)
    counts = ", ".join(f"< {t:g}: {int((smallest < t).sum())}" for t in TIE_THRESHOLDS)
    print(f"  images by smallest decision gap ({counts}) of {n}; smallest {smallest.min():.2e}")
    return 0


def add_parser(sub):
    """Register the `traces` subcommand on an argparse subparsers object (tome_ref, pitome_ref, here)."""
    s = sub.add_parser("traces", help="source traces over a folder of images -> safetensors")
    s.add_argument("--model", required=True, help="model folder (config.json + model.safetensors)")
    s.add_argument("--images", required=True, help="folder of *.JPEG / *.jpg / *.png, sorted by name")
    s.add_argument("--method", required=True, help="tome:r=13 | pitome-code:ratio=0.9")
    s.add_argument("--limit", type=int, default=0, help="first N images only (0 = all)")
    s.add_argument("--out", required=True, help="output .safetensors")
    s.add_argument("--batch", type=int, default=50)
    s.add_argument("--threads", type=int, default=1)
    s.set_defaults(fn=cmd_traces)
    return s


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd")
    add_parser(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "traces":                # the script's one command may be left out
        argv = ["traces"] + argv
    a = p.parse_args(argv)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
