import pytest
import torch

from wmlab.errors import WmlabError
from wmlab.planning import BoxSpace, CategoricalSpace, DiscreteCEM, DiscreteCEMConfig, make_planner

B, H, K = 3, 5, 16
# The fork's unused `mpc_discrete_cem` configuration (§8.4): sharper, so it also solves S = 2 within 30 iterations.
SHARP = {"iterations": 30, "pseudocount": 0.0, "momentum": 0.1, "min_prob": 1e-4, "temperature": 1.0}


def target_indices(splits: int, seed: int = 100) -> torch.Tensor:
    """(B, H, S) a different known index sequence per instance."""
    return torch.randint(0, K, (B, H, splits), generator=torch.Generator().manual_seed(seed))


class RecordingMismatches:
    """cost = number of (step, split) positions that differ from the target; records candidates and costs."""

    def __init__(self, target: torch.Tensor) -> None:
        self.target = target
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, candidates: torch.Tensor) -> torch.Tensor:
        assert candidates.dtype == torch.int64
        costs = (candidates != self.target.unsqueeze(1)).float().sum(dim=(-2, -1))
        self.calls.append((candidates.clone(), costs.clone()))
        return costs


@pytest.mark.parametrize("splits, overrides", [(1, {"iterations": 40}), (2, SHARP)])
def test_recovers_a_known_index_sequence(splits: int, overrides: dict):
    target = target_indices(splits)
    cost = RecordingMismatches(target)
    planner = make_planner("discrete-cem", CategoricalSpace(K, splits), overrides)
    result = planner.plan(cost, B, H, torch.Generator().manual_seed(0))
    assert result.plan.shape == (B, H, splits) and result.plan.dtype == torch.int64
    assert torch.equal(result.plan, target)
    assert result.cost.tolist() == [0.0] * B


def test_returns_the_best_sampled_sequence_seen_and_never_gets_worse():
    target = target_indices(2)
    cost = RecordingMismatches(target)
    result = DiscreteCEM(CategoricalSpace(K, 2)).plan(cost, B, H, torch.Generator().manual_seed(0))
    all_candidates = torch.cat([candidates for candidates, _ in cost.calls], dim=1)
    all_costs = torch.cat([costs for _, costs in cost.calls], dim=1)
    torch.testing.assert_close(result.cost, all_costs.min(dim=1).values)
    first_best = all_candidates[torch.arange(B), all_costs.argmin(dim=1)]  # argmin returns the first occurrence
    assert torch.equal(result.plan, first_best)
    best_seen = [row["best_seen_cost"] for row in result.history]
    assert best_seen == sorted(best_seen, reverse=True)
    assert len(cost.calls) == 10  # no extra evaluation: the plan's cost is known


def test_exactly_the_last_floor_uniform_frac_n_samples_are_uniform():
    warm = target_indices(1)
    cfg = DiscreteCEMConfig(samples=300, iterations=1, init_smoothing=0.0, min_prob=0.0, temperature=1.0)
    cost = RecordingMismatches(warm)
    DiscreteCEM(CategoricalSpace(K), cfg).plan(cost, B, H, torch.Generator().manual_seed(0), warm)
    candidates = cost.calls[0][0]
    # π is one-hot on the warm start, so every tempered sample copies it; the last 30 are uniform over K codes.
    assert torch.equal(candidates[:, :270], warm.unsqueeze(1).expand(B, 270, H, 1))
    mismatch = (candidates[:, 270:] != warm.unsqueeze(1)).float().mean().item()
    assert mismatch == pytest.approx(15 / 16, abs=0.05)
    assert bool((candidates[:, 270:, :, 0] != warm[:, None, :, 0]).any(dim=(1, 2)).all())
    cost = RecordingMismatches(warm)
    no_uniform = DiscreteCEMConfig(samples=55, elites=5, iterations=1, init_smoothing=0.0, min_prob=0.0, uniform_frac=0)
    DiscreteCEM(CategoricalSpace(K), no_uniform).plan(cost, B, H, torch.Generator().manual_seed(0), warm)
    assert torch.equal(cost.calls[0][0], warm.unsqueeze(1).expand(B, 55, H, 1))


def test_warm_start_is_smoothed_one_hot_and_rest_uniform():
    planner = DiscreteCEM(CategoricalSpace(K, 2))
    warm = target_indices(2)[:, :3]
    probs = planner.initial_distribution(B, H, warm, torch.device("cpu"))
    expected = 0.95 * torch.nn.functional.one_hot(warm, K).float() + 0.05 / K
    torch.testing.assert_close(probs[:, :3], expected)
    torch.testing.assert_close(probs[:, 3:], torch.full((B, 2, 2, K), 1 / K))
    with pytest.raises(WmlabError, match="integer code indices"):
        planner.plan(RecordingMismatches(warm), B, H, torch.Generator(), warm.float())
    with pytest.raises(WmlabError, match=r"in \[0, 16\)"):
        planner.plan(RecordingMismatches(warm), B, H, torch.Generator(), warm + K)


def test_one_update_follows_pseudocount_momentum_on_the_old_distribution_and_floor():
    cfg = DiscreteCEMConfig(samples=40, elites=6, iterations=1, pseudocount=1.0, momentum=0.7, min_prob=0.01)
    cost = RecordingMismatches(target_indices(1))
    result = DiscreteCEM(CategoricalSpace(K), cfg).plan(cost, B, H, torch.Generator().manual_seed(0))
    candidates, costs = cost.calls[0]
    elite_index = costs.topk(cfg.elites, dim=1, largest=False).indices
    counts = torch.zeros(B, H, 1, K)
    for b in range(B):
        for i in elite_index[b].tolist():
            for t in range(H):
                counts[b, t, 0, candidates[b, i, t, 0]] += 1
    mle = (counts + 1.0) / (counts + 1.0).sum(-1, keepdim=True)
    mle = mle.clamp_min(0.01) / mle.clamp_min(0.01).sum(-1, keepdim=True)
    old = torch.full_like(mle, 1 / K)
    new = 0.7 * old + 0.3 * mle  # m weights the OLD distribution
    new = new.clamp_min(0.01) / new.clamp_min(0.01).sum(-1, keepdim=True)
    row = result.history[0]
    assert row["mean_abs_delta_pi"] == pytest.approx((new - old).abs().mean().item(), rel=1e-5)
    assert row["mean_max_prob"] == pytest.approx(new.max(-1).values.mean().item(), rel=1e-5)
    assert row["entropy"] == pytest.approx(-(new * new.log()).sum(-1).mean().item(), rel=1e-5)


def test_mode_options():
    warm = target_indices(1)
    cfg = DiscreteCEMConfig(samples=20, elites=4, iterations=1, use_mode_as_first_sample=True, return_mode=True)
    cost = RecordingMismatches(warm)
    result = DiscreteCEM(CategoricalSpace(K), cfg).plan(cost, B, H, torch.Generator().manual_seed(0), warm)
    assert torch.equal(cost.calls[0][0][:, 0], warm)  # sample 0 is argmax π
    assert torch.equal(result.plan, warm)  # one iteration cannot move the mode off a smoothed one-hot
    assert len(cost.calls) == 2 and cost.calls[1][0].shape == (B, 1, H, 1)  # the mode is evaluated once more


def test_same_seed_same_plan_and_different_seed_different_plan():
    planner = DiscreteCEM(CategoricalSpace(K, 2), DiscreteCEMConfig(iterations=2))
    cost = RecordingMismatches(target_indices(2))
    first = planner.plan(cost, B, H, torch.Generator().manual_seed(7)).plan
    assert torch.equal(first, planner.plan(cost, B, H, torch.Generator().manual_seed(7)).plan)
    assert not torch.equal(first, planner.plan(cost, B, H, torch.Generator().manual_seed(8)).plan)


def test_space_and_config_errors():
    with pytest.raises(WmlabError, match="'discrete-cem' needs a CategoricalSpace.*'cem'"):
        make_planner("discrete-cem", BoxSpace(10))
    with pytest.raises(WmlabError, match="min_prob"):
        DiscreteCEM(CategoricalSpace(16), DiscreteCEMConfig(min_prob=0.1))
    with pytest.raises(WmlabError, match="momentum"):
        DiscreteCEMConfig(momentum=1.5)
    with pytest.raises(WmlabError, match="elites"):
        DiscreteCEMConfig(samples=10, elites=20)
