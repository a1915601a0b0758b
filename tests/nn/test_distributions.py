import torch

from wmlab.nn.distributions import BoundedNormal, OneHotDist, TwoHot, categorical_kl, symexp, symlog, two_hot_bins


def test_symlog_symexp_invert_each_other():
    x = torch.tensor([-1e4, -3.0, -0.5, 0.0, 0.5, 3.0, 1e4])
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=1e-5, atol=1e-5)


def test_two_hot_target_is_exact_in_symlog_space_and_clamps_outside():
    bins = two_hot_bins()
    values = torch.tensor([0.0, 1.0, -7.3, 250.0, 1e12, -1e12])
    target = TwoHot(torch.zeros(6, 255), bins).target(values)
    assert torch.allclose(target.sum(-1), torch.ones(6))
    assert ((target > 0).sum(-1) <= 2).all(), "at most two neighbouring bins"
    expected = symlog(values).clamp(-20, 20)
    torch.testing.assert_close((target * bins).sum(-1), expected, rtol=1e-5, atol=1e-5)


def test_two_hot_mean_and_log_prob_recover_a_learned_value():
    bins = two_hot_bins()
    logits = torch.zeros(255, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.1)
    for _ in range(300):
        loss = -TwoHot(logits, bins).log_prob(torch.tensor(42.0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert abs(TwoHot(logits, bins).mean().item() - 42.0) < 1.0


def test_one_hot_samples_pass_straight_through_gradients_and_unimix_bounds_probs():
    logits = torch.tensor([[20.0, -20.0, -20.0, -20.0]], requires_grad=True)
    dist = OneHotDist(logits, unimix=0.01)
    assert dist.probs.min() >= 0.01 / 4 - 1e-7
    sample = dist.sample(torch.Generator().manual_seed(0))
    assert set(sample.detach().flatten().tolist()) <= {0.0, 1.0} and sample.sum().item() == 1.0
    (sample * torch.arange(4.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_one_hot_sampling_frequencies_match_probabilities():
    probs = torch.tensor([0.1, 0.2, 0.7])
    dist = OneHotDist(probs.log().expand(20000, 3), unimix=0.0)
    freq = dist.sample(torch.Generator().manual_seed(1)).mean(0)
    torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)


def test_categorical_kl_is_zero_for_equal_and_positive_otherwise():
    a = torch.randn(5, 32, 16).log_softmax(-1)
    b = torch.randn(5, 32, 16).log_softmax(-1)
    assert categorical_kl(a, a).abs().max() < 1e-5
    assert (categorical_kl(a, b) > 0).all()


def test_bounded_normal_std_range_and_mean_in_unit_box():
    dist = BoundedNormal(torch.tensor([-100.0, 0.0, 100.0]), torch.tensor([-100.0, 0.0, 100.0]))
    assert torch.allclose(dist.std, torch.tensor([0.1, 0.1 + 0.9 * torch.sigmoid(torch.tensor(2.0)), 1.0]))
    assert dist.mean.abs().max() <= 1.0
    assert dist.log_prob(dist.mode()).shape == ()
