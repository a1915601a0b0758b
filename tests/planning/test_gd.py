import pytest
import torch

from wmlab.errors import WmlabError
from wmlab.planning import BoxSpace, CategoricalSpace, GDConfig, GradientDescent, make_planner

B, H, D = 3, 5, 2


def targets(seed: int = 0) -> torch.Tensor:
    """(B, H, D) a different target sequence per instance."""
    return torch.randn(B, H, D, generator=torch.Generator().manual_seed(seed))


class RecordingMSE:
    """cost(u) = mean_{t,d} (u - target)² per instance (an MSE, like the feature objective); records its inputs."""

    def __init__(self, target: torch.Tensor) -> None:
        self.target = target
        self.inputs: list[torch.Tensor] = []

    def __call__(self, candidates: torch.Tensor) -> torch.Tensor:
        self.inputs.append(candidates.detach().clone())
        return (candidates - self.target.unsqueeze(1)).square().mean(dim=(-2, -1))


def test_gd_finds_each_instances_optimum_of_a_quadratic_with_the_reference_lr_and_noise():
    target = targets()
    cost = RecordingMSE(target)
    result = GradientDescent(BoxSpace(D), GDConfig(steps=200)).plan(cost, B, H, torch.Generator().manual_seed(1))
    assert result.plan.shape == (B, H, D) and not result.plan.requires_grad
    assert all(x.shape == (B, 1, H, D) for x in cost.inputs)  # a single candidate per instance
    assert (result.plan - target).abs().max() < 0.02  # noise std 0.003 keeps it from being exact
    torch.testing.assert_close(result.cost, cost(result.plan.unsqueeze(1))[:, 0])
    assert [row["step"] for row in result.history] == [*range(0, 200, 10), 199]
    assert result.history[-1]["best_cost"] < 1e-3 < result.history[0]["best_cost"]


def test_each_instance_gets_its_own_unscaled_gradient():
    target = targets()
    sum_of_squares = lambda u: (u - target.unsqueeze(1)).square().sum(dim=(-2, -1))  # noqa: E731
    cfg = GDConfig(steps=1, lr=0.1, noise_std=0.0, init="zero")
    result = GradientDescent(BoxSpace(D), cfg).plan(sum_of_squares, B, H, torch.Generator().manual_seed(0))
    # u1 = 0 - lr · 2 (0 - target), whatever the batch size
    torch.testing.assert_close(result.plan, 0.2 * target)


def test_inits_and_warm_start():
    cost = RecordingMSE(targets())
    zero_action = torch.tensor([0.3, -0.2])
    cfg = GDConfig(steps=1, init="zero")
    GradientDescent(BoxSpace(D), cfg, zero_action=zero_action).plan(cost, B, H, torch.Generator().manual_seed(0))
    torch.testing.assert_close(cost.inputs[0][:, 0], zero_action.expand(B, H, D))
    mean = torch.tensor([1.0, 2.0])
    warm = torch.full((B, 2, D), -5.0)
    planner = GradientDescent(BoxSpace(D), GDConfig(steps=1, init="empirical"), init_mean=mean)
    planner.plan(cost, B, H, torch.Generator().manual_seed(0), warm)
    torch.testing.assert_close(cost.inputs[-2][:, 0, :2], warm)
    torch.testing.assert_close(cost.inputs[-2][:, 0, 2:], mean.expand(B, H - 2, D))
    with pytest.raises(WmlabError, match="init=empirical needs init_mean"):
        GradientDescent(BoxSpace(D), GDConfig(init="empirical"))


def test_same_seed_same_plan_and_different_seed_different_plan():
    planner = GradientDescent(BoxSpace(D), GDConfig(steps=5, init="zero"))
    cost = RecordingMSE(targets())
    first = planner.plan(cost, B, H, torch.Generator().manual_seed(7)).plan
    assert torch.equal(first, planner.plan(cost, B, H, torch.Generator().manual_seed(7)).plan)
    assert not torch.allclose(first, planner.plan(cost, B, H, torch.Generator().manual_seed(8)).plan)


def test_refuses_categorical_spaces_and_non_differentiable_costs():
    with pytest.raises(WmlabError, match="'gd' needs a BoxSpace.*discrete-cem"):
        GradientDescent(CategoricalSpace(16))
    with pytest.raises(WmlabError, match="'gd' needs a BoxSpace"):
        make_planner("gd", CategoricalSpace(16))
    detached = lambda u: u.detach().square().sum(dim=(-2, -1))  # noqa: E731
    with pytest.raises(WmlabError, match="differentiable cost"):
        GradientDescent(BoxSpace(D), GDConfig(steps=2)).plan(detached, B, H, torch.Generator().manual_seed(0))
    with pytest.raises(WmlabError, match="unknown gd init"):
        GDConfig(init="gaussian")
