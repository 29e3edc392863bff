#!/usr/bin/python3
"""Seed corpora for the fuzz targets in tests/fuzz, made from the shared files at test time.

  make_seeds.py OUT_DIR SHARED_DIR

OUT_DIR/<target>/ gets:
  safetensors  small files of every dtype the reader knows (scalars, empty tensors, metadata), and one with the
               tensor names, dtypes and ranks of the shared deit_tiny model.safetensors header but 2 values each
  config       the shared models' config.json files, variants (avg pooling, distilled, deit3) and model names
  thresholds   LTMP and LTP thresholds files as `mergescope-cli calibrate` writes them (core/thresholds.h)
  method_spec  one spec per registered method, and their options
  image        3 shared photos shrunk to 16-48 px and saved as baseline/progressive/grey JPEG, PNG of every colour
               type (8- and 16-bit, palette, interlaced) and BMP (24-bit, palette, 1-bit)
Small inputs on purpose: libFuzzer mutates a few KB far faster than a 100 KB photo.
Run with Debian's /usr/bin/python3 (python3-pil); standard library otherwise.
"""
import io
import json
import os
import struct
import sys
import zlib

from PIL import Image

OUT, SHARED = sys.argv[1], sys.argv[2]
MODELS = os.path.join(SHARED, "models")
PHOTOS = ["n01440764_tench.JPEG", "n01514859_hen.JPEG", "n01494475_hammerhead.JPEG"]


def put(target, name, data):
    folder = os.path.join(OUT, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# --- safetensors: 8-byte little-endian header length, JSON header, data (offsets relative to the data) ---
DTYPES = {"F64": ("d", 8), "F32": ("f", 4), "F16": ("e", 2), "BF16": (None, 2), "I64": ("q", 8),
          "I32": ("i", 4), "I16": ("h", 2), "I8": ("b", 1), "U8": ("B", 1), "BOOL": ("?", 1)}


def safetensors(tensors, metadata=None, pad_to=8):
    """tensors: list of (name, dtype, shape, values)."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, values in tensors:
        fmt, size = DTYPES[dtype]
        if dtype == "BF16":  # upper half of a float32
            raw = b"".join(struct.pack("<f", v)[2:] for v in values)
        else:
            raw = struct.pack("<%d%s" % (len(values), fmt), *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((-8 - len(text)) % pad_to)
    return struct.pack("<Q", len(text)) + text + data


put("safetensors", "f32_2x3", safetensors([("w", "F32", [2, 3], [0.5, -1.0, 2.0, 3.25, -0.0, 1e-3])]))
put("safetensors", "all_dtypes", safetensors(
    [("a.f64", "F64", [2], [1.0, -2.5]), ("b.f16", "F16", [3], [0.5, 1.0, -2.0]), ("c.bf16", "BF16", [2], [1.5, -3.0]),
     ("d.i64", "I64", [1, 2], [7, -9]), ("e.i32", "I32", [2], [1, 2]), ("f.i16", "I16", [2], [-3, 4]),
     ("g.i8", "I8", [2], [-1, 1]), ("h.u8", "U8", [4], [0, 1, 254, 255]), ("i.bool", "BOOL", [2], [True, False])],
    metadata={"format": "pt", "note": "seed"}))
put("safetensors", "scalar_and_empty", safetensors(
    [("scalar", "F32", [], [4.0]), ("empty", "F32", [0, 3], []), ("vec", "I64", [2], [1, 2])]))
put("safetensors", "no_tensors", safetensors([], metadata={"k": "v"}))
put("safetensors", "unpadded", safetensors([("x", "U8", [3], [1, 2, 3])], pad_to=1))
# The real model's header: its names, dtypes and ranks, with two values per tensor.
with open(os.path.join(MODELS, "deit_tiny_patch16_224", "model.safetensors"), "rb") as f:
    (n,) = struct.unpack("<Q", f.read(8))
    real = json.loads(f.read(n))
tensors = []
for name, entry in sorted(real.items())[:24]:
    if name == "__metadata__":
        continue
    shape = [2] + [1] * (len(entry["shape"]) - 1) if entry["shape"] else []
    count = 2 if shape else 1
    tensors.append((name, entry["dtype"], shape, [0.25 * (i + 1) for i in range(count)]))
put("safetensors", "deit_tiny_names", safetensors(tensors, metadata=real.get("__metadata__")))

# --- config.json and model names ---
for model in sorted(os.listdir(MODELS)):
    path = os.path.join(MODELS, model, "config.json")
    if os.path.exists(path):
        put("config", model + ".json", open(path, "rb").read())
        base = json.load(open(path))
        avg = json.loads(json.dumps(base))
        avg.setdefault("model_args", {}).update({"global_pool": "avg", "class_token": False, "fc_norm": True})
        put("config", model + "_avg.json", json.dumps(avg))
put("config", "minimal.json", '{"architecture": "vit_base_patch16_224"}')
put("config", "deit3.json", json.dumps({
    "architecture": "deit3_small_patch16_384", "num_classes": 10,
    "model_args": {"img_size": 384, "init_values": 1e-6, "no_embed_class": True, "pre_norm": False, "depth": 4},
    "pretrained_cfg": {"interpolation": "bilinear", "crop_pct": 1.0, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
                       "input_size": [3, 384, 384]}}, indent=1))
put("config", "distilled.json", json.dumps({"architecture": "deit_base_distilled_patch16_224",
                                            "model_args": {"mlp_ratio": 2.5, "num_heads": 6}}))
for name in ["deit_small_patch16_224", "vit_large_patch14_224.augreg_in21k_ft_in1k", "deit_tiny_distilled_patch16_384",
             "deit3_huge_patch14_224"]:
    put("config", "name_" + name, name)

# --- thresholds ---
ltmp = {"format": "mergescope-thresholds", "method": "ltmp", "model": "deit_tiny_patch16_224",
        "blocks": [{"merge": 0.95 - 0.01 * l, "prune": 0.0005 * l} for l in range(12)],
        "calibration": {"images": 250, "target_flops": 0.6, "kept": [1.0, 0.9, 0.8]}}
put("thresholds", "ltmp.json", json.dumps(ltmp, indent=2))
ltp = {"format": "mergescope-thresholds", "method": "ltp",
       "blocks": [{"prune": "-inf" if l == 0 else 0.001 * l} for l in range(4)]}
put("thresholds", "ltp.json", json.dumps(ltp))
put("thresholds", "ltmp_inf.json", json.dumps({"method": "ltmp", "blocks": [{"merge": "inf", "prune": "-inf"},
                                                                            {"merge": 1e-300, "prune": -0.5}]}))

# --- method specs (core/reduce/registry.cpp) ---
for i, spec in enumerate(["none", "tome:r=13", "tome:r=8,prop_attn=0", "tome:schedule=8;8;4;0,inflect=-0.5",
                          "pitome:ratio=0.9", "pitome-code:ratio=0.925", "random:r=4,seed=7", "ltp:prune=0.002",
                          "ltmp:merge=0.9,prune=0.001", "ltmp:merge=inf,prune=-inf", "tome:r=0,inflect=1.5",
                          "tofu:ratio=0.9", "mctf:r=3,blocks=1;2", "mctf:r=0.35,tau_info=0", "dct:ratio=0.6",
                          "diffrate:ratio=0.9", "diffrate:r=2", "diffrate:prune=17;15;12;9,merge=16;13;12;5",
                          "evit:keep=0.5,blocks=1;3", "evit:keep=0.7,fuse=0,blocks=0;1;2;3"]):
    put("method_spec", "spec%02d" % i, spec)

# --- images ---
def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_16bit_rgb_interlaced(img):
    """PIL writes neither 16-bit RGB nor Adam7, so this one is written by hand."""
    w, h = img.size
    px = img.load()
    # Adam7 passes: (x0, y0, dx, dy)
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        for y in range(y0, h, dy):
            row = b"".join(struct.pack(">3H", *(c * 257 for c in px[x, y])) for x in range(x0, w, dx))
            if row:
                raw += b"\x00" + row
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 1)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")


def save(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


for i, photo in enumerate(PHOTOS):
    src = Image.open(os.path.join(SHARED, "data", "imagenet-sample", photo)).convert("RGB")
    size = [(16, 12), (48, 32), (24, 40)][i]
    img = src.resize(size, Image.BICUBIC)
    stem = "p%d" % i
    put("image", stem + ".jpg", save(img, "JPEG", quality=75))
    put("image", stem + "_progressive.jpg", save(img, "JPEG", quality=60, progressive=True))
    put("image", stem + "_grey.jpg", save(img.convert("L"), "JPEG", quality=70))
    put("image", stem + ".png", save(img, "PNG"))
    put("image", stem + ".bmp", save(img, "BMP"))
    if i == 0:
        put("image", stem + "_rgba.png", save(img.convert("RGBA"), "PNG"))
        put("image", stem + "_la.png", save(img.convert("LA"), "PNG"))
        put("image", stem + "_grey.png", save(img.convert("L"), "PNG"))
        put("image", stem + "_grey16.png", save(img.convert("L").convert("I").point(lambda v: v * 257).convert("I;16"), "PNG"))
        put("image", stem + "_palette.png", save(img.convert("P", palette=Image.ADAPTIVE, colors=16), "PNG"))
        put("image", stem + "_1bit.png", save(img.convert("1"), "PNG"))
        put("image", stem + "_rgb16_interlaced.png", png_16bit_rgb_interlaced(img))
        put("image", stem + "_palette.bmp", save(img.convert("P", palette=Image.ADAPTIVE, colors=16), "BMP"))
        put("image", stem + "_1bit.bmp", save(img.convert("1"), "BMP"))
        put("image", stem + "_444.jpg", save(img, "JPEG", quality=90, subsampling=0))
