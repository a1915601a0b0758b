import numpy as np
import pytest
import torch

from tests.sizes import MICRO_DREAMER
from wmlab.config import build_config
from wmlab.dreamer.agent import DreamerAgent
from wmlab.dreamer.behavior import lambda_returns, replay_returns
from wmlab.dreamer.config import DreamerConfig

SMALL = [*MICRO_DREAMER, "train.batch_size=4", "behavior.horizon=5"]


def test_lambda_returns_match_the_recursion():
    reward = torch.tensor([[1.0], [2.0], [3.0]])
    cont = torch.tensor([[1.0], [1.0], [0.0]])
    value = torch.tensor([[10.0], [20.0], [30.0], [40.0]])
    g, lam = 0.9, 0.5
    r2 = 3.0 + g * 0.0 * (0.5 * 40 + 0.5 * 40)
    r1 = 2.0 + g * 1.0 * ((1 - lam) * 30 + lam * r2)
    r0 = 1.0 + g * 1.0 * ((1 - lam) * 20 + lam * r1)
    torch.testing.assert_close(lambda_returns(reward, cont, value, g, lam), torch.tensor([[r0], [r1], [r2]]))


def _batch(cfg, obs_dim, action_dim, seed=0):
    rng = np.random.default_rng(seed)
    b, t = cfg.train.batch_size, cfg.train.batch_length
    return {
        "state": rng.normal(size=(b, t, obs_dim)).astype(np.float32),
        "prev_action": rng.uniform(-1, 1, (b, t, action_dim)).astype(np.float32),
        "reward": rng.normal(size=(b, t)).astype(np.float32),
        "is_first": np.zeros((b, t), bool),
        "is_terminal": np.zeros((b, t), bool),
        "context": rng.normal(size=(b, t, 2)).astype(np.float32),
    }


def test_actor_loss_reaches_the_actor_through_the_dynamics_but_never_the_world_model():
    cfg = build_config(DreamerConfig, "dreamer", "tiny", overrides=SMALL)
    agent = DreamerAgent(cfg, obs_dim=3, action_dim=2, discrete=False)
    data = agent.to_torch(_batch(cfg, 3, 2))
    _, post, _, _ = agent.wm.loss(data)
    agent.zero_grad(set_to_none=True)
    for p in agent.ac.critic.parameters():  # give the critic a non-trivial value so returns depend on states
        torch.nn.init.normal_(p, std=0.1)
    actor_loss, critic_loss, _ = agent.ac.loss(agent.wm, post, data)
    actor_loss.backward()
    assert all(p.grad is None for p in agent.wm.parameters()), "the world model gets no actor gradient"
    assert all(p.grad is None for p in agent.ac.critic.parameters())
    assert sum(p.grad.abs().sum() for p in agent.ac.actor.parameters() if p.grad is not None) > 0


def test_one_update_trains_every_part_and_moves_the_slow_critic():
    for discrete in (False, True):
        cfg = build_config(DreamerConfig, "dreamer", "tiny", overrides=SMALL)
        agent = DreamerAgent(cfg, obs_dim=3, action_dim=2, discrete=discrete)
        for p in agent.ac.critic.parameters():
            torch.nn.init.normal_(p, std=0.1)
        before = {k: v.clone() for k, v in agent.state_dict().items()}
        metrics = agent.train_step(_batch(cfg, 3, 2))
        after = agent.state_dict()
        for prefix in (
            "wm.encoder",
            "wm.rssm",
            "wm.decoder",
            "wm.reward_head",
            "wm.cont_head",
            "ac.actor",
            "ac.critic",
            "ac.slow_critic",
        ):
            changed = any(not torch.equal(before[k], after[k]) for k in after if k.startswith(prefix + "."))
            assert changed, f"{prefix} did not change (discrete={discrete})"
        assert np.isfinite(list(metrics.values())).all()


def test_ground_truth_context_is_never_read_by_the_dreamer_variant():
    cfg = build_config(DreamerConfig, "dreamer", "tiny", overrides=SMALL)
    batch = _batch(cfg, 3, 2)
    losses = []
    for scale in (1.0, -50.0):
        torch.manual_seed(0)
        agent = DreamerAgent(cfg, obs_dim=3, action_dim=2, discrete=False)
        losses.append(agent.train_step({**batch, "context": batch["context"] * scale}))
    assert losses[0] == losses[1]


def test_bf16_autocast_update_is_finite_and_trains():
    cfg = build_config(DreamerConfig, "dreamer", "tiny", overrides=[*SMALL, "train.precision=bf16"])
    agent = DreamerAgent(cfg, obs_dim=3, action_dim=2, discrete=False)
    before = {k: v.clone() for k, v in agent.wm.state_dict().items()}
    metrics = agent.train_step(_batch(cfg, 3, 2))
    assert all(np.isfinite(v) for v in metrics.values())
    assert all(p.dtype == torch.float32 for p in agent.parameters()), "autocast never casts the weights"
    assert any(not torch.equal(before[k], v) for k, v in agent.wm.state_dict().items())


def test_compiled_agent_keeps_parameter_names_so_checkpoints_are_interchangeable():
    plain = DreamerAgent(build_config(DreamerConfig, "dreamer", "tiny", overrides=SMALL), 3, 2, False)
    cfg = build_config(DreamerConfig, "dreamer", "tiny", overrides=[*SMALL, "train.compile=true"])
    compiled = DreamerAgent(cfg, 3, 2, False)
    assert list(plain.state_dict()) == list(compiled.state_dict())
    compiled.load_state_dict(plain.state_dict())


def test_imagined_continue_mode_thresholds_and_mean_discounts_by_the_probability():
    """A continue head fixed at P = 0.8: ``mode`` imagines no termination (c = 1), ``mean`` discounts by 0.8."""
    returns = {}
    for reading in ("mode", "mean"):
        cfg = build_config(
            DreamerConfig, "dreamer", "tiny", overrides=[*SMALL, f"behavior.imagined_continue={reading}"]
        )
        agent = DreamerAgent(cfg, obs_dim=3, action_dim=2, discrete=True)
        wm = agent.wm
        with torch.no_grad():  # constant heads: reward symexp(bins[k]) everywhere, P(continue) = 0.8, value 0
            wm.cont_head.out.weight.zero_()
            wm.cont_head.out.bias.fill_(float(np.log(0.8 / 0.2)))
            wm.reward_head.out.weight.zero_()
            k = int(torch.argmin((wm.bins - np.log(2.0)).abs()))
            wm.reward_head.out.bias.zero_()[k] = 50.0
        data = agent.to_torch(_batch(cfg, 3, 2))
        _, post, _, _ = wm.loss(data)
        _, _, metrics = agent.ac.loss(wm, post, data)
        assert float(metrics["ac/imag_terminal"]) == 0.0
        returns[reading] = float(metrics["ac/return"])
    h, reward = cfg.behavior.horizon, float(torch.expm1(wm.bins[k]))
    for reading, c in (("mode", 1.0), ("mean", 0.8)):
        expected = lambda_returns(
            torch.full((h, 1), reward),
            torch.full((h, 1), c),
            torch.zeros(h + 1, 1),
            cfg.behavior.discount,
            cfg.behavior.lam,
        ).mean()
        assert returns[reading] == pytest.approx(float(expected), rel=1e-3)
    assert returns["mean"] < returns["mode"]


def test_replay_returns_stop_at_real_terminations_and_never_cross_episodes():
    """One window: steps 0-2 end in a termination at 2, step 3 starts an episode that a resume cut after step 4."""
    g, lam = 0.9, 0.5
    reward = torch.tensor([[0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0]])
    is_terminal = torch.tensor([[0, 0, 1, 0, 0, 0, 0]]).bool()
    is_last = torch.tensor([[0, 0, 1, 0, 0, 0, 0]]).bool()
    is_first = torch.tensor([[1, 0, 0, 1, 0, 1, 0]]).bool()  # step 4 has no is_last: the next step starts anew
    boot = torch.tensor([[50.0, 40.0, 30.0, 20.0, 10.0, 5.0, 7.0]])
    returns, valid = replay_returns(reward, is_terminal, is_last, is_first, boot, g, lam)
    r1 = 1.0  # the next step terminates: no bootstrap at all
    r0 = 1.0 + g * ((1 - lam) * 40.0 + lam * r1)
    r3 = 1.0 + g * 10.0  # step 4 ends its (cut) episode: bootstrap only, as for a time limit
    r5 = 1.0 + g * 7.0  # the window's last step bootstraps
    torch.testing.assert_close(returns[0, [0, 1, 3, 5]], torch.tensor([r0, r1, r3, r5]))
    torch.testing.assert_close(valid, torch.tensor([[1.0, 1.0, 0.0, 1.0, 0.0, 1.0]]))


def test_replay_value_loss_trains_the_critic_towards_real_returns():
    """With ``replay_value_scale`` > 0 the critic learns that a state before a real termination is worth its last
    reward, whatever the world model imagines after it."""
    cfg = build_config(DreamerConfig, "dreamer", "tiny", overrides=[*SMALL, "behavior.replay_value_scale=1.0"])
    agent = DreamerAgent(cfg, obs_dim=3, action_dim=2, discrete=True)
    batch = _batch(cfg, 3, 2)
    batch["reward"][:] = 1.0
    batch["is_terminal"][:, -1] = True
    batch["is_last"] = batch["is_terminal"].copy()
    data = agent.to_torch(batch)
    _, post, _, _ = agent.wm.loss(data)
    _, critic_loss, metrics = agent.ac.loss(agent.wm, post, data)
    assert "ac/replay_value_loss" in metrics
    critic_loss.backward()
    assert sum(p.grad.abs().sum() for p in agent.ac.critic.parameters() if p.grad is not None) > 0
    plain = build_config(DreamerConfig, "dreamer", "tiny", overrides=SMALL)
    assert plain.behavior.replay_value_scale == 0.0  # the spec's early-2023 DreamerV3 by default
    opt = torch.optim.Adam(agent.ac.critic.parameters(), 1e-3)
    features = agent.wm.head_features(post, None).detach()
    for _ in range(200):
        _, critic_loss, _ = agent.ac.loss(agent.wm, post, data)
        opt.zero_grad()
        critic_loss.backward()
        opt.step()
    with torch.no_grad():
        value = agent.ac.value(features[:, -2], agent.wm.bins).mean()
    assert float(value.mean()) == pytest.approx(1.0, abs=0.35)  # the step before termination: one reward left
