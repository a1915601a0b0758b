import pytest
import torch

from wmlab.errors import WmlabError
from wmlab.planning import MPPI, BoxSpace, CategoricalSpace, MPPIConfig, make_planner

B, H, D = 3, 5, 2


def targets(seed: int = 0) -> torch.Tensor:
    """(B, H, D) a different target sequence per instance, on the scale of the initial σ = 1."""
    return torch.randn(B, H, D, generator=torch.Generator().manual_seed(seed))


class RecordingQuadratic:
    """cost(u) = Σ_t ||u_t - target_t||² per instance; keeps every candidate tensor and cost it was asked for."""

    def __init__(self, target: torch.Tensor) -> None:
        self.target = target
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, candidates: torch.Tensor) -> torch.Tensor:
        costs = (candidates - self.target.unsqueeze(1)).square().sum(dim=(-2, -1))
        self.calls.append((candidates.clone(), costs.clone()))
        return costs


def test_mppi_finds_each_instances_optimum_of_a_quadratic():
    target = targets()
    cost = RecordingQuadratic(target)
    result = MPPI(BoxSpace(D)).plan(cost, B, H, torch.Generator().manual_seed(0))
    assert result.plan.shape == (B, H, D) and result.cost.shape == (B,)
    error = (result.plan - target).abs()
    assert error.max() < 0.2 and error.mean() < 0.05
    torch.testing.assert_close(result.cost, cost(result.plan.unsqueeze(1))[:, 0])
    assert len(result.history) == 10
    assert set(result.history[0]) == {"best_cost", "weighted_cost", "mean_sigma", "effective_samples"}
    assert all(row["mean_sigma"] >= 0.05 - 1e-7 for row in result.history)  # σ floored at sigma_min


def test_the_mean_is_candidate_zero_and_becomes_the_weighted_mean():
    planner = MPPI(BoxSpace(D), MPPIConfig(samples=50, iterations=3, top_k=10))
    cost = RecordingQuadratic(targets())
    result = planner.plan(cost, B, H, torch.Generator().manual_seed(2))
    torch.testing.assert_close(cost.calls[0][0][:, 0], torch.zeros(B, H, D))
    for (candidates, costs), (next_candidates, _) in zip(cost.calls[:-1], cost.calls[1:]):
        weights = planner.weights(costs)
        expected = (weights[:, :, None, None] * candidates).sum(1)
        torch.testing.assert_close(next_candidates[:, 0], expected)
    torch.testing.assert_close(result.plan, cost.calls[-1][0][:, 0])


def test_weights_follow_the_relative_and_absolute_rules():
    costs = torch.tensor([[1.0, 2.0, 3.0, 5.0], [0.0, 0.0, 4.0, 8.0]])
    relative = MPPI(BoxSpace(D), MPPIConfig(samples=4, temperature=0.5)).weights(costs)
    lower_median = torch.tensor([[2.0], [0.0]])
    scores = (costs - costs.min(1, keepdim=True).values) / (
        0.5 * (lower_median - costs.min(1, keepdim=True).values) + 1e-8
    )
    torch.testing.assert_close(relative, torch.softmax(-scores, dim=1))
    absolute = MPPI(BoxSpace(D), MPPIConfig(samples=4, temperature=2.0, temperature_mode="absolute")).weights(costs)
    expected = torch.exp(-(costs - costs.min(1, keepdim=True).values) / 2.0)
    torch.testing.assert_close(absolute, expected / expected.sum(1, keepdim=True))
    top_two = MPPI(BoxSpace(D), MPPIConfig(samples=4, temperature=10.0, top_k=2)).weights(costs)
    assert torch.equal(top_two[:, 2:], torch.zeros(2, 2)) and bool((top_two[:, :2] > 0).all())
    torch.testing.assert_close(top_two.sum(1), torch.ones(2))


def test_same_seed_same_plan_and_different_seed_different_plan():
    planner = MPPI(BoxSpace(D), MPPIConfig(samples=40, iterations=2))
    cost = RecordingQuadratic(targets())
    first = planner.plan(cost, B, H, torch.Generator().manual_seed(7)).plan
    assert torch.equal(first, planner.plan(cost, B, H, torch.Generator().manual_seed(7)).plan)
    assert not torch.allclose(first, planner.plan(cost, B, H, torch.Generator().manual_seed(8)).plan)


def test_warm_start_fills_the_front_and_the_rest_is_mu_init():
    mean, std = torch.tensor([0.5, -1.0]), torch.tensor([0.1, 0.2])
    cfg = MPPIConfig(samples=20, iterations=1, init="empirical")
    warm = torch.randn(B, 3, D, generator=torch.Generator().manual_seed(3))
    cost = RecordingQuadratic(targets())
    MPPI(BoxSpace(D), cfg, init_mean=mean, init_std=std).plan(cost, B, H, torch.Generator().manual_seed(0), warm)
    torch.testing.assert_close(cost.calls[0][0][:, 0, :3], warm)
    torch.testing.assert_close(cost.calls[0][0][:, 0, 3:], mean.expand(B, H - 3, D))


def test_config_errors_are_clear():
    with pytest.raises(WmlabError, match="init_mean and init_std"):
        MPPI(BoxSpace(D), MPPIConfig(init="empirical"))
    with pytest.raises(WmlabError, match="unknown mppi temperature_mode"):
        MPPIConfig(temperature_mode="relativ")
    with pytest.raises(WmlabError, match="top_k"):
        MPPIConfig(samples=10, top_k=11)
    with pytest.raises(WmlabError, match="needs a BoxSpace"):
        make_planner("mppi", CategoricalSpace(8))
