"""`state`: the PushT 5-d state as a single token (spec latent_actions.md §5.4).

The state [agent_x, agent_y, block_x, block_y, block_angle] is normalised with the dataset's valid-step statistics
(§4.6) and returned as one token: P = 1, E = 5. With ``angle="sincos"`` the angle is replaced by (cos θ, sin θ),
E = 6, because θ mod 2π jumps at 0 / 2π and an MSE objective would see neighbouring poses as far apart (pitfall 9);
cos and sin are already in [-1, 1] and are not normalised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from wmlab.errors import WmlabError, unknown_name_error

ENCODER_ID = "state"
STATE_DIM = 5
ANGLE_MODES = ("raw", "sincos")


class StateEncoder:
    """Normalised 5-d state -> one token.

    Args:
        mean: (5,) valid-step mean of the training states.
        std: (5,) valid-step standard deviation (all > 0).
        angle: "raw" (E = 5, the reference) or "sincos" (E = 6: four normalised positions, cos θ, sin θ).
        device: where the tokens are returned.
    """

    name = ENCODER_ID
    input_kind = "state"

    def __init__(
        self,
        mean: Sequence[float] | np.ndarray | torch.Tensor,
        std: Sequence[float] | np.ndarray | torch.Tensor,
        angle: str = "raw",
        device: torch.device | str = "cpu",
    ) -> None:
        if angle not in ANGLE_MODES:
            raise unknown_name_error("state angle encoding", angle, ANGLE_MODES)
        self.device = torch.device(device)
        self.mean = torch.as_tensor(np.asarray(mean, dtype=np.float64), dtype=torch.float32).to(self.device)
        self.std = torch.as_tensor(np.asarray(std, dtype=np.float64), dtype=torch.float32).to(self.device)
        if self.mean.shape != (STATE_DIM,) or self.std.shape != (STATE_DIM,):
            raise WmlabError(
                f"state statistics must have shape ({STATE_DIM},), got mean {tuple(self.mean.shape)} and std "
                f"{tuple(self.std.shape)}; use the dataset's valid-step state statistics"
            )
        if not bool((self.std > 0).all()):
            raise WmlabError(f"state std must be positive, got {self.std.tolist()}; recompute the dataset statistics")
        self.angle = angle

    @property
    def token_shape(self) -> tuple[int, int]:
        """(1, 5), or (1, 6) with ``angle="sincos"``."""
        return (1, STATE_DIM + (self.angle == "sincos"))

    def encode(self, states: np.ndarray | torch.Tensor) -> torch.Tensor:
        """states: float (B, 5) in simulator units (px, rad). Returns float32 (B, 1, E)."""
        x = torch.as_tensor(states).to(self.device, torch.float32)
        if x.ndim != 2 or x.shape[-1] != STATE_DIM:
            raise WmlabError(
                f"state encoder expects (B, {STATE_DIM}) states [agent_x, agent_y, block_x, block_y, angle], got "
                f"{tuple(x.shape)}; drop velocities with states[:, :{STATE_DIM}]"
            )
        normed = (x - self.mean) / self.std
        if self.angle == "sincos":
            theta = x[:, 4:5]
            normed = torch.cat([normed[:, :4], torch.cos(theta), torch.sin(theta)], dim=-1)
        return normed[:, None, :]

    def metadata(self) -> dict[str, Any]:
        return {
            "encoder": self.name,
            "implementation": "wmlab StateEncoder",
            "angle": self.angle,
            "state_mean": self.mean.tolist(),
            "state_std": self.std.tolist(),
            "token_shape": list(self.token_shape),
        }

    def __repr__(self) -> str:
        return f"StateEncoder(angle={self.angle!r}, tokens={self.token_shape})"
