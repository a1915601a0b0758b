import torch

from wmlab.dreamer.rssm import RSSM


def _rssm():
    torch.manual_seed(0)
    return RSSM(embed_dim=10, action_dim=2, deter=16, hidden=16, stoch=4, classes=5)


def test_observe_shapes_and_one_hot_latents():
    rssm = _rssm()
    post, prior = rssm.observe(torch.randn(3, 7, 10), torch.randn(3, 7, 2), torch.zeros(3, 7, dtype=torch.bool))
    assert post["deter"].shape == (3, 7, 16) and post["stoch"].shape == (3, 7, 4, 5)
    assert torch.allclose(post["stoch"].sum(-1), torch.ones(3, 7, 4))
    assert rssm.features(post).shape == (3, 7, 16 + 20)
    assert torch.equal(post["deter"], prior["deter"]), "posterior and prior share h_t"


def test_is_first_resets_state_and_previous_action():
    rssm = _rssm()
    embed, actions = torch.randn(2, 6, 10), torch.randn(2, 6, 2)
    is_first = torch.zeros(2, 6, dtype=torch.bool)
    is_first[:, 3] = True
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    post, _ = rssm.observe(embed, actions, is_first, generator=gen())
    # the same steps observed from scratch: identical deterministic state at the reset step
    fresh, _ = rssm.observe(
        embed[:, 3:], torch.zeros_like(actions[:, 3:]), torch.ones(2, 3, dtype=torch.bool), generator=gen()
    )
    torch.testing.assert_close(post["deter"][:, 3], fresh["deter"][:, 0])
    other = actions.clone()
    other[:, 3] += 5.0  # the action recorded at a reset is ignored
    post2, _ = rssm.observe(embed, other, is_first, generator=gen())
    torch.testing.assert_close(post["deter"][:, 3], post2["deter"][:, 3])


def test_large_actions_are_clipped_inside_the_transition():
    rssm = _rssm()
    state = rssm.initial(1)
    a = rssm.img_step(state, torch.tensor([[3.0, -7.0]]), sample=False)
    b = rssm.img_step(state, torch.tensor([[1.0, -1.0]]), sample=False)
    torch.testing.assert_close(a["deter"], b["deter"])


def test_kl_free_nats_apply_after_summing_latents():
    rssm = _rssm()
    logits = torch.randn(2, 3, 4, 5).log_softmax(-1)
    loss, parts = rssm.kl_loss({"logits": logits}, {"logits": logits}, free_nats=1.0)
    torch.testing.assert_close(loss, torch.full((2, 3), 0.5 + 0.1))  # both terms clipped at 1 nat
    prior = torch.randn(2, 3, 4, 5).log_softmax(-1) * 5
    loss, parts = rssm.kl_loss({"logits": logits}, {"logits": prior.log_softmax(-1)}, free_nats=0.0)
    torch.testing.assert_close(loss, 0.5 * parts["kl_dyn"] + 0.1 * parts["kl_rep"])
