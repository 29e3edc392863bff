#!/usr/bin/python3
"""A minimal stand-in for timm 0.4.12, so released token-reduction patches (which import timm) can run on
scripts/pyref/vit_ref.py's timm-equivalent ViT. Shared by the golden generators in this folder.

Released patches do `from timm.models.vision_transformer import Attention, Block, VisionTransformer`,
subclass those classes, and swap `module.__class__` of a model's modules (isinstance checks). This module
provides those three classes (plus Mlp, DropPath, trunc_normal_, register_model) as subclasses of vit_ref's
modules with the attributes and forward semantics of timm 0.4.12, the version the PiToMe repository pins
(requirements.txt, setup.py):
  - Attention: attn_drop / proj_drop (Identity at eval), forward(x) -> x.
  - Block: drop_path (Identity at eval), forward = x + drop_path(attn(norm1(x))), then the MLP likewise.
  - VisionTransformer: pos_drop, pre_logits (Identity), dist_token / head_dist (None without distillation),
    forward_features returns the normed CLS row (or (CLS, DIST) rows), forward applies the head(s).
Nothing numerical differs from vit_ref: the shim only renames and re-wires.
Released files that define their own ViT (EViT's evit.py) only need their timm imports to resolve: timm.data
constants, timm.models.helpers / layers / registry names (model-building helpers raise NotImplementedError).
stub(name, **attrs) registers a stand-in for a non-timm import that is missing here (tqdm, torchprofile).

Usage:
    import timm_shim
    timm_shim.install()                                    # registers timm, timm.models, ... in sys.modules
    model = timm_shim.load_deit(model_dir)                 # vit_ref model converted in place, eval mode
    mod = timm_shim.import_released(repo_root, "algo.tofu.patch.deit")   # no package __init__ is run

import_released loads one module of a released repository without executing the __init__.py files of its
packages (those often import every model family: transformers, LAVIS, ...); relative and absolute imports
between the repository's own modules still resolve.
"""
import importlib
import os
import sys
import types

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pyref"))
import vit_ref  # noqa: E402

TIMM_VERSION = "0.4.12"

# ----------------------------------------------------------------------------- timm 0.4.12 classes


class DropPath(nn.Module):
    """Stochastic depth; identity at evaluation (all golden runs are eval-mode)."""

    def __init__(self, drop_prob=0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
    return nn.init.trunc_normal_(tensor, mean=mean, std=std, a=a, b=b)


def register_model(fn):
    return fn


# Used by released model files that define their own ViT (e.g. EViT's evit.py); only their imports must
# resolve, model building goes through their classes directly.
IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)
IMAGENET_INCEPTION_MEAN = (0.5, 0.5, 0.5)
IMAGENET_INCEPTION_STD = (0.5, 0.5, 0.5)


def lecun_normal_(tensor):
    fan_in = nn.init._calculate_fan_in_and_fan_out(tensor)[0]
    return nn.init.trunc_normal_(tensor, std=(1.0 / fan_in) ** 0.5 / .87962566103423978)


def to_2tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x, x)


def named_apply(fn, module, name="", depth_first=True, include_root=False):
    if not depth_first and include_root:
        fn(module=module, name=name)
    for child_name, child in module.named_children():
        child_name = ".".join((name, child_name)) if name else child_name
        named_apply(fn, child, child_name, depth_first, include_root=True)
    if depth_first and include_root:
        fn(module=module, name=name)
    return module


def _unsupported(what):
    def fn(*args, **kwargs):
        raise NotImplementedError(f"timm_shim: {what} is not provided (build the model class directly)")
    return fn


def stub(name, **attrs):
    """Register module `name` with `attrs` unless it can be imported (for a released file's optional,
    non-numerical imports such as tqdm or torchprofile)."""
    if name in sys.modules:
        return sys.modules[name]
    try:
        return importlib.import_module(name)
    except ImportError:
        m = _module(name, **attrs)
        sys.modules[name] = m
        return m


class Mlp(vit_ref.Mlp):
    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Attention(vit_ref.Attention):
    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        attn = self.attn_drop(attn)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class Block(vit_ref.Block):
    def forward(self, x):
        # ls1/ls2 are Identity for models without LayerScale (DeiT, ViT), i.e. timm 0.4.12's Block.
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))


class VisionTransformer(vit_ref.VisionTransformer):
    def forward_features(self, x):
        x = self.patch_embed(x)
        cls_token = self.cls_token.expand(x.shape[0], -1, -1)
        if self.dist_token is None:
            x = torch.cat((cls_token, x), dim=1)
        else:
            x = torch.cat((cls_token, self.dist_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = self.pos_drop(x + self.pos_embed)
        x = self.blocks(x)
        x = self.norm(x)
        if self.dist_token is None:
            return self.pre_logits(x[:, 0])
        return x[:, 0], x[:, 1]

    def forward(self, x):
        x = self.forward_features(x)
        if self.head_dist is not None:
            x, x_dist = self.head(x[0]), self.head_dist(x[1])
            if self.training:
                return x, x_dist
            return (x + x_dist) / 2
        return self.head(x)


def from_vit_ref(model):
    """Convert a vit_ref.VisionTransformer in place into the shim's timm 0.4.12 classes (same parameters).
    Only class-token models with the final LayerNorm (DeiT / ViT classifiers) are supported."""
    if model.global_pool != "token" or not isinstance(model.fc_norm, nn.Identity):
        raise ValueError("timm_shim: only global_pool='token' models without fc_norm (timm 0.4.12 layout)")
    model.__class__ = VisionTransformer
    model.pos_drop = nn.Identity()
    model.pre_logits = nn.Identity()
    model.num_tokens = model.num_prefix_tokens
    for blk in model.blocks:
        blk.__class__ = Block
        blk.drop_path = nn.Identity()
        blk.attn.__class__ = Attention
        blk.attn.attn_drop = nn.Identity()
        blk.attn.proj_drop = nn.Identity()
        blk.mlp.__class__ = Mlp
        blk.mlp.drop = nn.Identity()
    return model.eval()


def load_deit(model_dir):
    """vit_ref.load_model(model_dir) converted to the shim's classes, eval mode."""
    model, _ = vit_ref.load_model(model_dir)
    return from_vit_ref(model)

# ----------------------------------------------------------------------------- sys.modules


def _module(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    m.__file__ = __file__
    return m


def install():
    """Register the stand-in as `timm` (refuses when a real timm is already imported)."""
    existing = sys.modules.get("timm")
    if existing is not None:
        if getattr(existing, "__timm_shim__", False):
            return
        raise RuntimeError("timm_shim: a real timm is already imported")
    vt = _module("timm.models.vision_transformer", Attention=Attention, Block=Block,
                 VisionTransformer=VisionTransformer, Mlp=Mlp)
    layers = _module("timm.models.layers", DropPath=DropPath, Mlp=Mlp, trunc_normal_=trunc_normal_,
                     lecun_normal_=lecun_normal_, to_2tuple=to_2tuple)
    registry = _module("timm.models.registry", register_model=register_model)
    helpers = _module("timm.models.helpers", named_apply=named_apply,
                      build_model_with_cfg=_unsupported("build_model_with_cfg"),
                      adapt_input_conv=_unsupported("adapt_input_conv"))
    models = _module("timm.models", vision_transformer=vt, layers=layers, registry=registry,
                     helpers=helpers, register_model=register_model,
                     create_model=_unsupported("create_model"))
    consts = dict(IMAGENET_DEFAULT_MEAN=IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD=IMAGENET_DEFAULT_STD,
                  IMAGENET_INCEPTION_MEAN=IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD=IMAGENET_INCEPTION_STD)
    constants = _module("timm.data.constants", **consts)
    data = _module("timm.data", constants=constants, **consts)
    timm = _module("timm", models=models, data=data, __version__=TIMM_VERSION, __timm_shim__=True)
    for m in (timm, models, vt, layers, registry, helpers, data, constants):
        m.__path__ = []  # a package, so `from timm.models.x import y` resolves through sys.modules
        sys.modules[m.__name__] = m


def import_released(root, dotted):
    """Import module `dotted` (e.g. 'algo.tofu.patch.deit') from the repository at `root` without running
    the __init__.py of its packages: each package level becomes an empty namespace-like module whose
    __path__ points into the repository."""
    root = os.path.abspath(root)
    parts = dotted.split(".")
    for i in range(1, len(parts)):
        name = ".".join(parts[:i])
        path = os.path.join(root, *parts[:i])
        have = sys.modules.get(name)
        if have is not None:
            if list(getattr(have, "__path__", [])) != [path]:
                raise RuntimeError(f"import_released: package {name} already loaded from elsewhere")
            continue
        if not os.path.isdir(path):
            raise FileNotFoundError(path)
        pkg = types.ModuleType(name)
        pkg.__path__ = [path]
        pkg.__package__ = name
        pkg.__file__ = os.path.join(path, "__init__.py")  # not executed
        sys.modules[name] = pkg
        if i > 1:
            setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], pkg)
    return importlib.import_module(dotted)


def git_head(root):
    """Commit hash of the released repository (for the golden metadata)."""
    import subprocess
    return subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()
