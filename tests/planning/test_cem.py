import pytest
import torch

from wmlab.errors import WmlabError
from wmlab.planning import CEM, BoxSpace, CategoricalSpace, CEMConfig, make_planner

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


def test_cem_finds_each_instances_optimum_of_a_quadratic():
    target = targets()
    cost = RecordingQuadratic(target)
    result = CEM(BoxSpace(D)).plan(cost, B, H, torch.Generator().manual_seed(0))
    assert result.plan.shape == (B, H, D) and result.cost.shape == (B,)
    # The `paper` budget (N 300, k 30, 10 iterations) on 10 coordinates per instance: every one within 0.2.
    error = (result.plan - target).abs()
    assert error.max() < 0.2 and error.mean() < 0.05
    # The reported cost is that of the returned plan (one extra evaluation with N = 1).
    assert cost.calls[-1][0].shape == (B, 1, H, D)
    torch.testing.assert_close(result.cost, cost(result.plan.unsqueeze(1))[:, 0])
    assert len(result.history) == 10
    assert set(result.history[0]) == {"best_cost", "mean_elite_cost", "mean_sigma"}
    assert result.history[-1]["best_cost"] < result.history[0]["best_cost"]
    assert all(isinstance(v, float) for row in result.history for v in row.values())


def test_the_mean_is_candidate_zero_and_elites_refit_mean_and_unbiased_std():
    cfg = CEMConfig(samples=40, elites=8, iterations=3)
    cost = RecordingQuadratic(targets())
    result = CEM(BoxSpace(D), cfg).plan(cost, B, H, torch.Generator().manual_seed(1))
    assert len(cost.calls) == cfg.iterations + 1
    torch.testing.assert_close(cost.calls[0][0][:, 0], torch.zeros(B, H, D))  # standard init: μ = 0
    for (candidates, costs), (next_candidates, _) in zip(cost.calls[:-1], cost.calls[1:]):
        elite_index = costs.topk(cfg.elites, dim=1, largest=False).indices
        elites = torch.stack([candidates[b, elite_index[b]] for b in range(B)])
        torch.testing.assert_close(next_candidates[:, 0], elites.mean(1))
    torch.testing.assert_close(result.plan, cost.calls[-1][0][:, 0])
    last_candidates, last_costs = cost.calls[-2]
    elite_index = last_costs.topk(cfg.elites, dim=1, largest=False).indices
    elites = torch.stack([last_candidates[b, elite_index[b]] for b in range(B)])
    assert result.history[-1]["mean_sigma"] == pytest.approx(elites.std(1, unbiased=True).mean().item(), rel=1e-5)


def test_same_seed_same_plan_and_different_seed_different_plan():
    planner = CEM(BoxSpace(D), CEMConfig(samples=50, elites=5, iterations=2))
    cost = RecordingQuadratic(targets())
    first = planner.plan(cost, B, H, torch.Generator().manual_seed(7)).plan
    again = planner.plan(cost, B, H, torch.Generator().manual_seed(7)).plan
    other = planner.plan(cost, B, H, torch.Generator().manual_seed(8)).plan
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_warm_start_fills_the_front_rest_is_mu_init_and_sigma_is_reset():
    mean, std = torch.tensor([0.5, -1.0]), torch.tensor([0.1, 0.2])
    cfg = CEMConfig(samples=4000, elites=10, iterations=1, init="empirical", var_scale=2.0)
    warm = torch.randn(B, 2, D, generator=torch.Generator().manual_seed(3))
    cost = RecordingQuadratic(targets())
    CEM(BoxSpace(D), cfg, init_mean=mean, init_std=std).plan(cost, B, H, torch.Generator().manual_seed(0), warm)
    candidates = cost.calls[0][0]
    torch.testing.assert_close(candidates[:, 0, :2], warm)
    torch.testing.assert_close(candidates[:, 0, 2:], mean.expand(B, H - 2, D))
    spread = (candidates[:, 1:] - candidates[:, :1]).std(dim=(0, 1, 2))
    torch.testing.assert_close(spread, 2.0 * std, rtol=0.05, atol=0.0)


def test_warm_start_errors_and_empty_warm_start():
    planner = CEM(BoxSpace(D), CEMConfig(samples=20, elites=4, iterations=1))
    cost = RecordingQuadratic(targets())
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(WmlabError, match="more than the horizon"):
        planner.plan(cost, B, H, generator, torch.zeros(B, H + 1, D))
    with pytest.raises(WmlabError, match="warm_start must have shape"):
        planner.plan(cost, B, H, generator, torch.zeros(B, 2, D + 1))
    planner.plan(cost, B, H, generator, torch.zeros(B, 0, D))
    torch.testing.assert_close(cost.calls[-2][0][:, 0], torch.zeros(B, H, D))


def test_empirical_init_without_statistics_is_an_error():
    with pytest.raises(WmlabError, match="init_mean and init_std"):
        CEM(BoxSpace(D), CEMConfig(init="empirical"))
    with pytest.raises(WmlabError, match="init_mean and init_std"):
        CEM(BoxSpace(D), CEMConfig(clamp_k=2.0), init_mean=torch.zeros(D))
    with pytest.raises(WmlabError, match=r"shape \(2,\)"):
        CEM(BoxSpace(D), CEMConfig(init="empirical"), init_mean=torch.zeros(3), init_std=torch.ones(3))


def test_clamp_k_bounds_samples_and_mean():
    mean, std = torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.25])
    cfg = CEMConfig(samples=200, elites=20, iterations=3, clamp_k=2.0)
    cost = RecordingQuadratic(targets())  # targets lie mostly outside the box
    result = CEM(BoxSpace(D), cfg, init_mean=mean, init_std=std).plan(cost, B, H, torch.Generator().manual_seed(0))
    low, high = mean - 2.0 * std, mean + 2.0 * std
    for candidates, _ in cost.calls:
        assert bool(((candidates >= low) & (candidates <= high)).all())
    assert bool(((result.plan >= low) & (result.plan <= high)).all())
    assert any(bool(((candidates == low) | (candidates == high)).any()) for candidates, _ in cost.calls)


def test_config_and_space_errors():
    with pytest.raises(WmlabError, match="elites"):
        CEMConfig(samples=10, elites=1)
    with pytest.raises(WmlabError, match="unknown cem init 'emprical'.*did you mean 'empirical'"):
        CEMConfig(init="emprical")
    with pytest.raises(WmlabError, match="needs a BoxSpace.*discrete-cem"):
        CEM(CategoricalSpace(16))
    with pytest.raises(WmlabError, match=r"floating costs of shape \(3, 20\)"):
        CEM(BoxSpace(D), CEMConfig(samples=20, elites=4)).plan(
            lambda u: u.sum(dim=(-1,)), B, H, torch.Generator().manual_seed(0)
        )


def test_make_planner_builds_from_mappings_and_names_mistakes():
    planner = make_planner("cem", BoxSpace(D), {"samples": 100, "elites": 10})
    assert isinstance(planner, CEM) and planner.cfg.samples == 100 and planner.cfg.iterations == 10
    assert make_planner("cem", BoxSpace(D), CEMConfig(iterations=3)).cfg.iterations == 3
    with pytest.raises(WmlabError, match="unknown planner 'cme'.*did you mean 'cem'"):
        make_planner("cme", BoxSpace(D))
    with pytest.raises(WmlabError, match="unknown config key 'cem.sample'"):
        make_planner("cem", BoxSpace(D), {"sample": 10})
    with pytest.raises(WmlabError, match="does not take zero_action"):
        make_planner("cem", BoxSpace(D), zero_action=torch.zeros(D))
    with pytest.raises(WmlabError, match="takes a CEMConfig or a mapping"):
        make_planner("cem", BoxSpace(D), 3)
