#!/usr/bin/python3
"""Helpers shared by the golden generators in this folder: comparing partitions and logits, and the metadata every
golden file carries (see ../../tests/golden and the shared golden/README.md for the layout)."""
import hashlib
import json
import os

import numpy as np
import torch

# The shared data beside the repository (../shared from its root), as the project's search path has it.
SHARED = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared"))
SHARED_MODEL = os.path.join(SHARED, "models", "deit_tiny_patch16_224")
SHARED_GOLDEN = os.path.join(SHARED, "golden", "deit_tiny_merge_reference.safetensors")


def canonical(labels):
    """A partition relabelled by first appearance (ids are arbitrary, only the grouping counts); -1 (pruned) stays."""
    seen, out = {}, []
    for v in labels:
        out.append(-1 if v < 0 else seen.setdefault(v, len(seen)))
    return out


def differing(a, b):
    """(image, block) pairs whose partitions differ between cluster tensors a and b [images, blocks, tokens]."""
    return [(i, l) for i in range(a.shape[0]) for l in range(a.shape[1])
            if canonical(a[i, l].tolist()) != canonical(b[i, l].tolist())]


def rel_err(a, ref):
    """max |a - ref| / max |ref|: the golden logits tolerance's measure."""
    return ((a - ref).abs().max() / ref.abs().max()).item()


def base_metadata(model_dir, gmeta, repo, commit, files, generator):
    """The metadata fields every project golden file has: model, images, where the input is, the released code."""
    return {
        "model": os.path.basename(os.path.normpath(model_dir)),
        "images": gmeta.get("images", ""),
        "input": "tensor `input` of the shared golden/deit_tiny_merge_reference.safetensors",
        "released": json.dumps({"repo": repo, "commit": commit, "files": files}),
        "generator": generator + " (timm_shim.py: timm 0.4.12 stand-in over scripts/pyref/vit_ref.py)",
        "torch": torch.__version__, "threads": str(torch.get_num_threads()),
    }


def shared_input_ref(g):
    """The metadata value naming the shared golden file's `input` tensor, with its sha256."""
    return json.dumps({"file": "shared/golden/deit_tiny_merge_reference.safetensors", "tensor": "input",
                       "sha256": hashlib.sha256(np.ascontiguousarray(g["input"]).tobytes()).hexdigest()})


def write_golden(path, tensors, meta, write_safetensors, read_safetensors):
    """Writes a golden file and reads it back: the same tensors and metadata, or an AssertionError."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_safetensors(path, tensors, meta)
    back, back_meta = read_safetensors(path)
    assert set(back) == set(tensors) and all(np.array_equal(back[k], v) for k, v in tensors.items())
    assert back_meta == meta
    print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes, read back ok)")
