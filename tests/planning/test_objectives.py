import pytest
import torch

from wmlab.errors import WmlabError
from wmlab.planning import frame_weights, goal_mse

B, N, T, P, E = 2, 3, 4, 2, 3  # T = H + 1 frames, H = 3


def tokens(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(B, N, T, P, E, generator=generator), torch.randn(B, P, E, generator=generator)


def test_last_frame_mse_equals_a_hand_computation():
    predicted, goal = tokens()
    expected = torch.zeros(B, N)
    for b in range(B):
        for n in range(N):
            total = 0.0
            for p in range(P):
                for e in range(E):
                    total += (predicted[b, n, -1, p, e] - goal[b, p, e]).item() ** 2
            expected[b, n] = total / (P * E)
    torch.testing.assert_close(goal_mse(predicted, goal), expected)
    torch.testing.assert_close(goal_mse(predicted[:, :, -1], goal, mode="last"), expected)


def test_all_frames_weighted_by_powers_of_two_and_frame_zero_ignored():
    predicted, goal = tokens()
    torch.testing.assert_close(frame_weights(3), torch.tensor([2.0, 4.0, 8.0]) / 14.0)
    per_frame = [(predicted[:, :, k] - goal[:, None]).square().mean(dim=(-2, -1)) for k in range(T)]
    expected = (2 * per_frame[1] + 4 * per_frame[2] + 8 * per_frame[3]) / 14
    torch.testing.assert_close(goal_mse(predicted, goal, mode="all"), expected)
    changed = predicted.clone()
    changed[:, :, 0] += 10.0
    torch.testing.assert_close(goal_mse(changed, goal, mode="all"), expected)
    assert frame_weights(5).sum().item() == pytest.approx(1.0)


def test_differentiable_and_half_precision_compared_in_float32():
    predicted, goal = tokens()
    predicted.requires_grad_(True)
    goal_mse(predicted, goal, mode="all").sum().backward()
    assert predicted.grad is not None and predicted.grad[:, :, 0].abs().sum() == 0
    half = goal_mse(predicted.detach().bfloat16(), goal.bfloat16())
    assert half.dtype == torch.float32 and half.shape == (B, N)


def test_shape_and_mode_errors():
    predicted, goal = tokens()
    with pytest.raises(WmlabError, match="unknown objective mode 'al'"):
        goal_mse(predicted, goal, mode="al")
    with pytest.raises(WmlabError, match="whole rollout"):
        goal_mse(predicted[:, :, -1], goal, mode="all")
    with pytest.raises(WmlabError, match="matching goal"):
        goal_mse(predicted, goal[:, :1])
    with pytest.raises(WmlabError, match=r"goal tokens \(B, P, E\)"):
        goal_mse(predicted, goal[0])
