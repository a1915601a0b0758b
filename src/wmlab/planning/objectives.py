"""Planning objectives in feature space (spec/latent_actions.md §8.1).

``goal_mse`` turns predicted patch tokens into planner costs (B, N). It works one frame at a time, so the largest
temporary is a single frame's difference (B, N, P, E); half-precision inputs are compared in float32.
"""

from __future__ import annotations

import torch

from wmlab.errors import WmlabError, unknown_name_error

MODES = ("last", "all")


def frame_weights(horizon: int, device: torch.device | None = None) -> torch.Tensor:
    """(H,) weights w_k = 2^k / Σ_{j=1..H} 2^j of predicted frames k = 1..H (``mode=all``); they sum to 1."""
    powers = torch.pow(2.0, torch.arange(1, horizon + 1, dtype=torch.float64))
    return (powers / powers.sum()).to(device=device, dtype=torch.float32)


def frame_mse(frame: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """(B, N) mean over patches and features of (frame - goal)² for frame (B, N, P, E) and goal (B, P, E)."""
    difference = frame - goal.unsqueeze(1)
    if difference.dtype in (torch.float16, torch.bfloat16):
        difference = difference.float()
    return difference.square().mean(dim=(-2, -1))


def goal_mse(predicted: torch.Tensor, goal: torch.Tensor, mode: str = "last") -> torch.Tensor:
    """Feature-space distance of predicted frames to the goal, one cost per instance and candidate.

    Args:
        predicted: (B, N, H+1, P, E) rollout tokens, frame 0 being the current observation; or, for ``mode=last``
            only, the final frame (B, N, P, E).
        goal: (B, P, E) goal tokens v_g.
        mode: ``last``: C = mean_{p,e} (v̂_H - v_g)², the reference objective; ``all``: C = Σ_{k=1..H} w_k·MSE(v̂_k, v_g)
            with w_k = 2^k / Σ_j 2^j (frame 0 is not compared).

    Returns:
        (B, N) costs, float32 for half-precision inputs, differentiable in ``predicted``.
    """
    if mode not in MODES:
        raise unknown_name_error("objective mode", mode, MODES)
    if goal.dim() != 3:
        raise WmlabError(f"goal_mse expects goal tokens (B, P, E), got shape {tuple(goal.shape)}")
    if predicted.dim() not in (4, 5) or predicted.shape[0] != goal.shape[0] or predicted.shape[-2:] != goal.shape[1:]:
        raise WmlabError(
            f"goal_mse expects predicted tokens (B, N, H+1, P, E) or a last frame (B, N, P, E) matching goal "
            f"(B, P, E) = {tuple(goal.shape)}, got {tuple(predicted.shape)}"
        )
    if predicted.dim() == 4:
        if mode == "all":
            raise WmlabError(
                "goal_mse mode=all weights every predicted frame; pass the whole rollout (B, N, H+1, P, E), "
                "not only the last frame"
            )
        return frame_mse(predicted, goal)
    if mode == "last":
        return frame_mse(predicted[:, :, -1], goal)
    horizon = predicted.shape[2] - 1
    if horizon < 1:
        raise WmlabError("goal_mse mode=all needs at least one predicted frame after frame 0 (H+1 >= 2 frames)")
    weights = frame_weights(horizon, predicted.device)
    cost = weights[0] * frame_mse(predicted[:, :, 1], goal)
    for k in range(2, horizon + 1):
        cost = cost + weights[k - 1] * frame_mse(predicted[:, :, k], goal)
    return cost
