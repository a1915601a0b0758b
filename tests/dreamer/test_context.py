"""Conformance tests of the contextual variants (spec/dali.md §13)."""

import numpy as np
import pytest
import torch

from wmlab.config import build_config
from wmlab.dreamer.agent import DreamerAgent
from wmlab.dreamer.config import DreamerConfig
from wmlab.dreamer.context import ContextEncoder, gather_windows, window_index
from wmlab.errors import WmlabError

SMALL = [
    "model.deter=32",
    "model.hidden=32",
    "model.stoch=4",
    "model.classes=4",
    "model.units=32",
    "model.encoder_units=32",
    "model.cnn_depth=4",
    "train.batch_size=3",
    "train.batch_length=12",
    "behavior.horizon=4",
    "context.window=6",
    "context.width=16",
    "context.fw_units=16",
]
OBS, ACT = 5, 2


def _agent(variant, *overrides, seed=0):
    cfg = build_config(DreamerConfig, "dreamer", "tiny", overrides=[*SMALL, f"variant={variant}", *overrides])
    torch.manual_seed(seed)
    return DreamerAgent(cfg, obs_dim=OBS, action_dim=ACT, discrete=False)


def _batch(b=3, t=12, seed=0, first_at=(5,)):
    rng = np.random.default_rng(seed)
    is_first = np.zeros((b, t), bool)
    is_first[:, 0] = True
    for i in first_at:
        is_first[:, i] = True
    prev = rng.uniform(-1, 1, (b, t, ACT)).astype(np.float32)
    prev[is_first] = 0
    return {
        "state": rng.normal(size=(b, t, OBS)).astype(np.float32),
        "prev_action": prev,
        "reward": rng.normal(size=(b, t)).astype(np.float32),
        "is_first": is_first,
        "is_terminal": np.zeros((b, t), bool),
        "context": rng.uniform(-1, 1, (b, t, 2)).astype(np.float32),
        "image": rng.integers(0, 256, (b, t, 64, 64, 3), dtype=np.uint8),
    }


@pytest.mark.parametrize("kind", ["transformer", "gru", "mlp", "attention"])
def test_context_is_causal_and_sees_its_whole_window(kind):
    torch.manual_seed(0)
    encoder = ContextEncoder(kind, token_dim=4, window=5, width=8, dim=3)
    tokens = torch.randn(2, 10, 4)
    is_first = torch.zeros(2, 10, dtype=torch.bool)
    base, _, _ = encoder.all_windows(tokens, is_first)
    later = tokens.clone()
    later[:, 7:] += 3.0
    changed, _, _ = encoder.all_windows(later, is_first)
    torch.testing.assert_close(changed[:, :7], base[:, :7])  # nothing after t reaches c_t
    assert (changed[:, 7:] - base[:, 7:]).abs().amax() > 1e-3
    inside = tokens.clone()
    inside[:, 3] += 3.0  # inside the windows ending at t = 3..7
    moved, _, _ = encoder.all_windows(inside, is_first)
    assert ((moved - base).abs().amax(-1) > 1e-4)[:, 3:8].all()
    torch.testing.assert_close(moved[:, :3], base[:, :3])


def test_window_index_pads_with_the_first_step_and_never_crosses_an_episode_start():
    is_first = torch.tensor([[False, False, False, True, False, False, False, False]])
    idx, mask = window_index(is_first, 4)
    assert idx[0, 1].tolist() == [0, 0, 0, 1] and mask[0, 1].tolist() == [False, False, True, True]
    assert idx[0, 4].tolist() == [3, 3, 3, 4], "window after the reset starts at the reset"
    assert idx[0, 7].tolist() == [4, 5, 6, 7] and mask[0, 7].all()


def test_padding_equals_repeating_the_first_real_token():
    torch.manual_seed(0)
    encoder = ContextEncoder("transformer", token_dim=3, window=4, width=8, dim=2)
    tokens = torch.randn(1, 6, 3)
    contexts, _, _ = encoder.all_windows(tokens, torch.zeros(1, 6, dtype=torch.bool))
    for t in range(3):  # n_t = t + 1 real tokens
        manual = torch.cat([tokens[:, :1].expand(1, 4 - (t + 1), 3), tokens[:, : t + 1]], 1)
        torch.testing.assert_close(encoder(manual), contexts[:, t])


@pytest.mark.parametrize("variant", ["dali-s", "dali-d"])
@pytest.mark.parametrize("modality", ["state", "pixels"])
def test_acting_contexts_equal_training_contexts(variant, modality):
    agent = _agent(variant, f"env.modality={modality}")
    batch = _batch(b=2, t=12, first_at=(7,))  # an episode start in the middle of the sequence
    data = agent.to_torch(batch)
    embed = agent.wm.encode(data)
    trained = agent.wm.infer_context(data, embed)["context"]
    state = agent.initial_policy_state(2)
    for t in range(12):
        obs = {k: batch[k][:, t] for k in ("state", "image", "context")}
        state["action"] = torch.as_tensor(batch["prev_action"][:, t])  # the action taken at t - 1
        state, kappa = agent.observe_step(obs, batch["is_first"][:, t], state)
        torch.testing.assert_close(kappa, trained[:, t], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["dreamer", "dali-s", "dali-d"])
def test_ground_truth_context_never_reaches_dreamer_or_dali(variant):
    batch = _batch()
    results = []
    for scale in (1.0, -40.0):
        agent = _agent(variant)
        metrics = agent.train_step({**batch, "context": batch["context"] * scale})
        state = agent.initial_policy_state(3)
        obs = {"state": batch["state"][:, 0], "context": batch["context"][:, 0] * scale}
        actions, _ = agent.act(obs, np.ones(3, bool), state)
        results.append((metrics, actions))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_crssm_variants_do_read_the_ground_truth_context():
    batch = _batch()
    for variant in ("crssm-s", "crssm-d"):
        losses = [_agent(variant).train_step({**batch, "context": batch["context"] * s})["wm/loss"] for s in (1, -4)]
        assert losses[0] != losses[1], variant


def test_where_the_context_enters_each_variant():
    feat = 32 + 4 * 4
    for variant, transition, posterior, heads in (
        ("dreamer", 0, 0, 0),
        ("crssm-s", 0, 0, 0),
        ("crssm-d", 2, 0, 2),
        ("dali-s", 8, 8, 0),
        ("dali-d", 8, 8 * 0, 8),
    ):
        wm = _agent(variant).wm
        assert wm.rssm.img_in[0].in_features == 4 * 4 + ACT + transition, variant
        assert wm.rssm.obs_out[0].in_features == 32 + wm.encoder.out_dim + posterior, variant
        assert wm.head_dim == feat + heads, variant
        assert wm.reward_head.trunk[0][0].in_features == feat + heads
        agent = _agent(variant)
        assert agent.ac.actor.trunk[0][0].in_features == feat + heads
        assert agent.ac.critic.trunk[0][0].in_features == feat + heads
    assert _agent("crssm-s").wm.encoder.mlp[0][0].in_features == OBS + 2, "crssm-s encodes [obs, c~]"
    assert _agent("crssm-s").wm.decoder.out.out_features == OBS + 2, "and reconstructs both"


@pytest.mark.parametrize("variant", ["dali-s", "dali-d"])
def test_context_modules_are_optimised_jointly(variant):
    agent = _agent(variant, "context.repr_loss=both", "context.crossmodal=true")
    optimised = {id(p) for group in agent.wm_opt.param_groups for p in group["params"]}
    modules = [agent.wm.context_encoder, agent.wm.forward_model, agent.wm.inverse_model, agent.wm.crossmodal]
    for module in modules:
        assert all(id(p) in optimised for p in module.parameters())
    before = [[p.clone() for p in m.parameters()] for m in modules]
    agent.train_step(_batch())
    for module, old in zip(modules, before):
        assert any(not torch.equal(p, q) for p, q in zip(module.parameters(), old)), type(module).__name__
    fixed = agent.wm.crossmodal.to_state.weight
    assert fixed.grad is None or fixed.grad.abs().sum() == 0, "A gets no gradient: a fixed random projection"


def test_imagination_holds_the_context_fixed_and_uses_it():
    agent = _agent("dali-d")
    data = agent.to_torch(_batch())
    _, post, kappa, _ = agent.wm.loss(data)
    start = {k: v[:, 3] for k, v in post.items()}
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    features, held, _ = agent.ac.imagine(agent.wm, start, 4, kappa[:, 3], gen())
    assert held.shape == (5, 3, 8) and (held == held[0]).all()
    torch.testing.assert_close(features[..., -8:], held)
    other, _, _ = agent.ac.imagine(agent.wm, start, 4, kappa[:, 3] + 1.0, gen())
    assert (other[1:, :, :-8] - features[1:, :, :-8]).abs().max() > 1e-4, "the transition uses the context"


def test_paper_shapes_walker_state():
    cfg = build_config(
        DreamerConfig,
        "dreamer",
        "paper",
        overrides=["variant=dali-s", "context.crossmodal=true", "context.repr_loss=both"],
    )
    wm = DreamerAgent(cfg, obs_dim=24, action_dim=6, discrete=False).wm
    assert wm.encoder.out_dim == 1024 and wm.rssm.feature_dim == 1536 and wm.context_dim == 8
    assert wm.forward_model.first.in_features + wm.forward_model.first_context.in_features == 38
    assert wm.forward_model.out.out_features == 24
    assert wm.inverse_model.first.in_features + 8 == 56 and wm.inverse_model.out.out_features == 6
    assert (wm.crossmodal.to_state.in_features, wm.crossmodal.to_state.out_features) == (8, 1536)
    assert wm.crossmodal.to_context[0].in_features == 1536 and wm.crossmodal.to_context.out_dim == 8
    assert wm.context_encoder.out[0].in_features == 64 * 256, "flattened K x W window"


def test_window_longer_than_training_sequences_is_refused():
    with pytest.raises(WmlabError, match="context.window"):
        build_config(DreamerConfig, "dreamer", "tiny", overrides=["variant=dali-s", "context.window=64"])


def test_gather_windows_matches_python_indexing():
    values = torch.randn(2, 7, 3)
    idx, _ = window_index(torch.zeros(2, 7, dtype=torch.bool), 3)
    windows = gather_windows(values, idx)
    for b in range(2):
        for t in range(7):
            torch.testing.assert_close(windows[b, t], values[b, idx[b, t]])


@pytest.mark.parametrize("kind", ["forward", "inverse"])
def test_alignment_loss_matches_the_definition(kind):
    from wmlab.dreamer.context import TransitionModel, alignment_loss

    torch.manual_seed(0)
    b, t, k, dx, a, dc = 2, 7, 4, 3, 2, 5
    x, action, context = torch.randn(b, t, dx), torch.randn(b, t, a), torch.randn(b, t, dc)
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[0, 4] = True
    idx, mask = window_index(is_first, k)
    model = TransitionModel(dx + a if kind == "forward" else 2 * dx, dc, dx if kind == "forward" else a, 8, 2)
    loss = alignment_loss(model, kind, x, action, context, idx, mask)
    windows = []
    for bi in range(b):
        for ti in range(t):
            terms = []
            for j in range(k - 1):
                if not mask[bi, ti, j]:
                    continue
                src, dst = idx[bi, ti, j], idx[bi, ti, j + 1]
                assert dst == src + 1, "a valid transition links consecutive steps"
                c = model.first_context(context[bi, ti])
                if kind == "forward":
                    pred = model(model.first(torch.cat([x[bi, src], action[bi, src]])), c)
                    terms.append((pred - x[bi, dst]).pow(2).mean())
                else:
                    pred = model(model.first(torch.cat([x[bi, src], x[bi, dst]])), c)
                    terms.append((pred - action[bi, src]).pow(2).mean())
            if terms:
                windows.append(torch.stack(terms).mean())
    torch.testing.assert_close(loss, torch.stack(windows).mean())
    subset = alignment_loss(model, kind, x, action, context, idx, mask, 1, torch.Generator().manual_seed(0))
    assert torch.isfinite(subset) and subset != loss
