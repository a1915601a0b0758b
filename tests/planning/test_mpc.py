import pytest
import torch

from wmlab.errors import WmlabError
from wmlab.planning import CEM, BoxSpace, MPCConfig, PlanResult, run_mpc, shift_warm_start

B, H, D = 3, 5, 2


class ScriptedPlanner:
    """plan_fn whose plan at round r is 100·r + t at step t; records the warm starts it receives."""

    def __init__(self, costs: list[list[float]] | None = None) -> None:
        self.warm_starts: list[torch.Tensor | None] = []
        self.costs = costs

    def __call__(self, warm: torch.Tensor | None) -> PlanResult:
        round_index = len(self.warm_starts)
        self.warm_starts.append(warm)
        steps = torch.arange(H, dtype=torch.float32)[None, :, None]
        plan = (100.0 * round_index + steps).expand(B, H, D).clone()
        cost = torch.tensor(self.costs[round_index]) if self.costs else torch.ones(B)
        return PlanResult(plan=plan, cost=cost)


class Recorder:
    """execute_fn keeping every chunk and active mask."""

    def __init__(self) -> None:
        self.chunks: list[torch.Tensor] = []
        self.active: list[torch.Tensor] = []

    def __call__(self, chunk: torch.Tensor, active: torch.Tensor) -> None:
        self.chunks.append(chunk.clone())
        self.active.append(active.clone())


def test_shift_warm_start():
    plan = torch.arange(B * H * D, dtype=torch.float32).reshape(B, H, D)
    torch.testing.assert_close(shift_warm_start(plan, 2), plan[:, 2:])
    assert shift_warm_start(plan, H) is None


def test_loop_executes_chunks_and_passes_the_tail_as_warm_start():
    planner, executor = ScriptedPlanner(), Recorder()
    results = run_mpc(planner, executor, MPCConfig(max_iter=3, n_exec=2), B, H)
    assert len(results) == 3 and len(executor.chunks) == 3
    for round_index, (chunk, result) in enumerate(zip(executor.chunks, results)):
        assert chunk.shape == (B, 2, D)
        torch.testing.assert_close(chunk, result.plan[:, :2])
        assert chunk[0, 0, 0].item() == 100.0 * round_index
    assert planner.warm_starts[0] is None
    for previous, warm in zip(results[:-1], planner.warm_starts[1:]):
        torch.testing.assert_close(warm, previous.plan[:, 2:])
    assert all(bool(active.all()) for active in executor.active)


def test_executing_the_whole_plan_leaves_no_warm_start():
    planner, executor = ScriptedPlanner(), Recorder()
    run_mpc(planner, executor, MPCConfig(max_iter=2, n_exec=H), B, H)
    assert planner.warm_starts == [None, None]
    assert [chunk.shape for chunk in executor.chunks] == [(B, H, D), (B, H, D)]


def test_stop_cost_deactivates_instances_and_ends_the_loop_when_none_is_left():
    costs = [[0.5, 0.05, 0.5], [0.01, 0.5, 0.5], [0.5, 0.5, 0.09], [0.0, 0.0, 0.0]]
    planner, executor = ScriptedPlanner(costs), Recorder()
    results = run_mpc(planner, executor, MPCConfig(max_iter=10, n_exec=5, stop_cost=0.1), B, H)
    assert len(results) == 3  # the third round stops the last active instance
    expected = [[True, True, True], [True, False, True], [False, False, True]]
    assert [active.tolist() for active in executor.active] == expected
    # Without a stop cost, nothing stops early.
    executor = Recorder()
    assert len(run_mpc(ScriptedPlanner(costs * 3), executor, MPCConfig(max_iter=4), B, H)) == 4


def test_bad_settings_and_plans_are_errors():
    with pytest.raises(WmlabError, match="exceeds the planning horizon"):
        run_mpc(ScriptedPlanner(), Recorder(), MPCConfig(n_exec=6), B, H)
    with pytest.raises(WmlabError, match="max_iter"):
        MPCConfig(max_iter=0)
    with pytest.raises(WmlabError, match="expected a plan"):
        run_mpc(ScriptedPlanner(), Recorder(), MPCConfig(max_iter=1), B, H + 1)


def integrator_setup() -> tuple[torch.Tensor, torch.Tensor, CEM, torch.Generator]:
    goal = torch.tensor([[1.0, 2.0], [-1.5, 0.5], [0.0, -2.0]])
    return goal, torch.zeros(B, D), CEM(BoxSpace(D)), torch.Generator()


@pytest.mark.parametrize("n_exec, stop_cost", [(2, None), (H, 0.05)])
def test_mpc_with_cem_reaches_goals_of_a_toy_integrator(n_exec: int, stop_cost: float | None):
    """x_{t+1} = x_t + u_t; the cost sums the squared distances of all predicted positions to the goal."""
    goal, position, planner, generator = integrator_setup()
    generator.manual_seed(0)
    executed_steps = torch.zeros(B)

    def plan_fn(warm: torch.Tensor | None) -> PlanResult:
        start = position.clone()
        cost = lambda u: (start[:, None, None] + u.cumsum(2) - goal[:, None, None]).square().sum((-2, -1))  # noqa: E731
        return planner.plan(cost, B, H, generator, warm)

    def execute_fn(chunk: torch.Tensor, active: torch.Tensor) -> None:
        position.add_(chunk.sum(1) * active[:, None])
        executed_steps.add_(chunk.shape[1] * active)

    results = run_mpc(plan_fn, execute_fn, MPCConfig(max_iter=4, n_exec=n_exec, stop_cost=stop_cost), B, H)
    assert (position - goal).norm(dim=1).max() < 0.1
    if stop_cost is None:
        assert len(results) == 4 and executed_steps.tolist() == [8.0, 8.0, 8.0]
    else:  # each instance stops after the round whose plan cost fell below stop_cost
        assert len(results) < 4 and executed_steps.max() < 4 * H
