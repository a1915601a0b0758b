import pytest
import torch

from wmlab.errors import WmlabError
from wmlab.latent.actions import ActionEncoder, InverseDynamics
from wmlab.latent.predictor import Predictor
from wmlab.latent.world_model import IDMConfig, LatentModelConfig, LatentWorldModel, PredictorConfig, VQConfig


def _model(variant, history=1, tokens=4, dim=8, **vq):
    cfg = LatentModelConfig(
        variant=variant,
        history=history,
        frameskip=5,
        action_dim=6,
        predictor=PredictorConfig(depth=2, heads=2, head_dim=8, mlp_dim=32, dropout=0.0),
        idm=IDMConfig(dim=16, depth=2, heads=2, head_dim=8, mlp_dim=32),
        vq=VQConfig(num_codes=4, **{"warmup": 0, "mix": 0, **vq}),
    )
    return LatentWorldModel(cfg, tokens, dim, seed=0)


def test_paper_parameter_counts():
    predictor = Predictor(1, 196, 416)
    assert sum(p.numel() for p in predictor.parameters()) == 20_556_864
    assert sum(p.numel() for p in Predictor(3, 196, 404).parameters()) == 20_122_600
    idm = InverseDynamics(384, 196)
    assert sum(p.numel() for p in idm.parameters() if p.requires_grad) == 28_669_056
    model = LatentWorldModel(LatentModelConfig(variant="la"), 196, 384)
    assert sum(p.numel() for p in model.latent_actions.down.parameters()) == 12_320
    assert sum(p.numel() for p in ActionEncoder(10, 32).parameters()) == 352


def test_the_mask_hides_the_future():
    model = _model("action", history=3).eval()
    tokens, actions = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 10)
    conditioning, _ = model.conditioning(tokens, actions)
    base = model.predict(tokens, conditioning)
    changed = tokens.clone()
    changed[:, 2] += torch.randn(2, 4, 8)  # frame t + 1 = 2
    out = model.predict(changed, conditioning)
    torch.testing.assert_close(out[:, :2], base[:, :2])  # predictions for frames <= t never see it
    assert (out[:, 2] - base[:, 2]).abs().max() > 1e-3


def test_latent_action_of_a_transition_depends_on_its_two_frames_only():
    model = _model("la").eval()
    v = torch.randn(3, 4, 4, 8)
    e, _ = model.conditioning(v, torch.zeros(3, 4, 10))
    assert e.shape == (3, 4, 6)
    torch.testing.assert_close(e[:, -1], e[:, -2])  # the +1 shift duplicates the last entry
    later = v.clone()
    later[:, 3] += torch.randn(3, 4, 8)  # random: a constant shift would vanish in the input LayerNorm
    e2, _ = model.conditioning(later, torch.zeros(3, 4, 10))
    torch.testing.assert_close(e2[:, :2], e[:, :2])  # e_t never sees frames after t + 1
    assert (e2[:, 2] - e[:, 2]).abs().max() > 1e-4  # e_2 encodes 2 -> 3
    window = v[:, :2]  # a training window (T = 2): e_0 depends on both frames, nothing crosses windows
    e0, _ = model.conditioning(window, torch.zeros(3, 2, 10))
    for frame in (0, 1):
        moved = window.clone()
        moved[0, frame] += torch.randn(4, 8)
        e1, _ = model.conditioning(moved, torch.zeros(3, 2, 10))
        assert (e1[0, 0] - e0[0, 0]).abs().max() > 1e-4
        torch.testing.assert_close(e1[1:], e0[1:])


@pytest.mark.parametrize("variant", ["action", "la", "la-vq"])
def test_loss_trains_predictor_and_conditioning(variant):
    model = _model(variant).train()
    tokens, actions = torch.randn(4, 2, 4, 8), torch.randn(4, 2, 10)
    loss, metrics = model.loss(tokens, actions, step=0)
    loss.backward()
    assert metrics["latent_pred_loss"] > 0 and torch.isfinite(loss)
    conditioning = model.action_encoder if variant == "action" else model.latent_actions
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.predictor.parameters() if p.requires_grad)
    grads = [p.grad.abs().sum() for p in conditioning.parameters() if p.grad is not None]
    assert grads and sum(grads) > 0, "the conditioning learns through the action channels"
    if variant == "la-vq":
        assert metrics["vq_commit_loss"] > 0


def test_vq_conditioning_uses_codebook_vectors():
    model = _model("la-vq").eval()  # no EMA update, so the codebook stays as it was when quantising
    e, extras = model.conditioning(torch.randn(5, 2, 4, 8), torch.zeros(5, 2, 10))
    codebook = model.latent_actions.quantizer.lookup(extras["indices"])
    torch.testing.assert_close(e[:, :1], codebook)


def test_rollout_matches_repeated_prediction_and_checks_shapes():
    model = _model("la", history=1).eval()
    v0, c = torch.randn(2, 1, 4, 8), torch.randn(2, 3, 6)
    frames = model.rollout(v0, c)
    assert frames.shape == (2, 4, 4, 8)
    step1 = model.predict(v0, c[:, :1])[:, -1]
    torch.testing.assert_close(frames[:, 1], step1)
    torch.testing.assert_close(frames[:, 2], model.predict(step1[:, None], c[:, 1:2])[:, -1])
    history = _model("action", history=3).eval()
    assert history.rollout(torch.randn(2, 1, 4, 8), torch.randn(2, 5, 6)).shape == (2, 6, 4, 8)
    with pytest.raises(WmlabError, match="at most"):
        history.predictor(torch.randn(1, 4, 4, 14))


def test_evaluation_uses_the_schedule_at_the_trained_step():
    model = _model("la-vq", warmup=100, mix=0).train()
    tokens, actions = torch.randn(3, 2, 4, 8), torch.zeros(3, 2, 10)
    _, early = model.conditioning(tokens, actions, step=5)
    assert float(early["alpha"]) == 0.0
    model.loss(tokens, actions, step=150)
    model.eval()
    e, extras = model.conditioning(tokens, actions)
    assert float(extras["alpha"]) == 1.0, "a model trained past the warm-up is evaluated quantised"
    torch.testing.assert_close(e[:, :1], model.latent_actions.quantizer.lookup(extras["indices"]))


@pytest.mark.parametrize("variant", ["action", "la-vq"])
def test_a_bf16_step_keeps_float32_state_and_a_loss_close_to_float32(variant):
    from wmlab.latent.train import LatentTrainConfig, make_optimizers, train_step

    tokens, actions = torch.randn(8, 2, 4, 8), torch.randn(8, 2, 10)
    losses = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)  # the same initial weights (nn.Linear draws from the global generator)
        model = _model(variant).train()
        optimizers = make_optimizers(model, LatentTrainConfig())
        parts = train_step(model, optimizers, {"tokens": tokens, "actions": actions}, 10, precision)
        losses[precision] = parts["latent_pred_loss"]
        assert parts["latent_pred_loss"].dtype == torch.float32
        assert all(p.dtype == torch.float32 for p in model.parameters())
        states = [s for o in optimizers.values() for s in o.state.values()]
        assert states and all(v.dtype == torch.float32 for s in states for v in s.values() if v.is_floating_point())
        if variant == "la-vq":
            assert model.latent_actions.quantizer.codebook.dtype == torch.float32
    assert losses["bf16"] != losses["fp32"], "bf16 autocast took effect"
    torch.testing.assert_close(losses["bf16"], losses["fp32"], rtol=2e-2, atol=0)


def test_bf16_rollouts_rank_candidates_as_float32_does():
    from wmlab.planning import goal_mse

    torch.manual_seed(0)
    model = _model("action").eval()
    start, goal = torch.randn(1, 1, 4, 8), torch.randn(1, 4, 8)
    candidates = torch.randn(64, 3, 10, generator=torch.Generator().manual_seed(1))
    costs = {}
    for precision in ("fp32", "bf16"):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            predicted = model.rollout(start.expand(64, -1, -1, -1), model.action_encoder(candidates))
        costs[precision] = goal_mse(predicted[None], goal, "last")[0]
    assert costs["bf16"].dtype == torch.float32
    torch.testing.assert_close(costs["bf16"], costs["fp32"], rtol=3e-2, atol=0)
    best = costs["fp32"].topk(8, largest=False).indices
    assert len(set(best.tolist()) & set(costs["bf16"].topk(8, largest=False).indices.tolist())) >= 6
