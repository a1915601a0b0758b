import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from wmlab.errors import WmlabError
from wmlab.nn.vq import (
    EMAVectorQuantizer,
    code_counts,
    dead_code_rate,
    perplexity,
    perplexity_norm,
    two_phase_alpha,
)

CENTRES = torch.tensor([[4.0, 4.0], [-4.0, 4.0], [-4.0, -4.0], [4.0, -4.0]])


def blobs(n: int, generator: torch.Generator, std: float = 0.3) -> torch.Tensor:
    """(n, 2) points from 4 well-separated Gaussian blobs around CENTRES."""
    labels = torch.randint(len(CENTRES), (n,), generator=generator)
    return CENTRES[labels] + std * torch.randn(n, 2, generator=generator)


def test_straight_through_gives_selected_codes_and_passes_the_gradient_unchanged():
    vq = EMAVectorQuantizer(num_codes=8, code_dim=4, splits=2, seed=1).eval()
    z = torch.randn(5, 3, 8, generator=torch.Generator().manual_seed(0), requires_grad=True)
    out = vq(z)
    assert out.indices.shape == (5, 3, 2) and out.indices.dtype == torch.int64
    expected = vq.codebook[out.indices].reshape(5, 3, 8)
    torch.testing.assert_close(out.quantized, expected)
    torch.testing.assert_close(vq.lookup(out.indices), expected)
    assert torch.equal(vq.assign(z), out.indices)
    # The selected code is the nearest one.
    rows = z.detach().reshape(-1, 4)
    assert torch.equal(torch.cdist(rows, vq.codebook).argmin(1), out.indices.reshape(-1))
    w = torch.randn(5, 3, 8, generator=torch.Generator().manual_seed(1))
    (out.quantized * w).sum().backward()
    torch.testing.assert_close(z.grad, w)


def test_commitment_loss_matches_its_definition_and_only_reaches_the_encoder():
    vq = EMAVectorQuantizer(num_codes=16, code_dim=32, commitment=0.1, seed=0)
    assert list(vq.parameters()) == [] and not vq.codebook.requires_grad, "the codebook moves by EMA only"
    z = torch.randn(64, 32, generator=torch.Generator().manual_seed(0), requires_grad=True)
    out = vq(z)
    z_q = out.quantized.detach()
    expected = 0.1 * ((z_q - z.detach()) ** 2).mean()
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(out.commit_mse, expected / 0.1)
    out.loss.backward()
    torch.testing.assert_close(z.grad, 2 * 0.1 * (z.detach() - z_q) / z.numel())
    assert vq.codebook.grad is None


@pytest.fixture
def one_thread():
    # Hundreds of tiny matmuls: a 2-thread pool on a busy 2-core machine is ~100x slower than one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("rule", ["corrected", "reference"])
def test_ema_codebook_converges_to_the_centres_of_separated_clusters(rule, one_thread):
    # With K equal to the number of blobs, EMA k-means can settle with two codes in one blob for some random
    # initialisations (about a third of seeds); seed 0 starts in the right basin for both rules.
    gen = torch.Generator().manual_seed(0)
    vq = EMAVectorQuantizer(num_codes=4, code_dim=2, decay=0.9, rule=rule, seed=0)
    for _ in range(150):
        vq(blobs(128, gen))
    distances = torch.cdist(CENTRES, vq.codebook)
    assert distances.min(1).values.max() < 0.1, distances
    counts = vq.eval()(blobs(4000, gen)).counts
    assert perplexity_norm(counts) > 0.95 and dead_code_rate(counts) == 0.0


def test_first_step_is_the_cluster_mean_when_corrected_and_init_biased_in_the_reference():
    # §6.7: one step with 10 vectors on one code gives the mean (corrected), or 1.9·c0 + mean at γ = 0.95 (reference).
    z = torch.full((10, 2), 50.0) + torch.randn(10, 2, generator=torch.Generator().manual_seed(0))
    for rule in ("corrected", "reference"):
        vq = EMAVectorQuantizer(num_codes=4, code_dim=2, decay=0.95, rule=rule, seed=3)
        code = int(vq.assign(z)[0])
        c0 = vq.codebook[code].clone()
        assert (vq(z).indices == code).all()
        expected = z.mean(0) if rule == "corrected" else 1.9 * c0 + z.mean(0)
        torch.testing.assert_close(vq.codebook[code], expected, atol=1e-3, rtol=1e-4)


def test_eval_mode_never_moves_the_codebook_or_its_statistics():
    vq = EMAVectorQuantizer(num_codes=4, code_dim=2, seed=0)
    vq(blobs(64, torch.Generator().manual_seed(0)))  # some non-trivial EMA state first
    before = {k: v.clone() for k, v in vq.state_dict().items() if isinstance(v, torch.Tensor)}
    vq.eval()
    for _ in range(5):
        out = vq(blobs(64, torch.Generator().manual_seed(1)) + 10.0)
        assert not out.reseeded.any()
    for key, value in before.items():
        assert torch.equal(vq.state_dict()[key], value), key


def test_dead_codes_are_reseeded_to_batch_vectors_become_used_and_are_not_reseeded_again():
    vq = EMAVectorQuantizer(num_codes=8, code_dim=2, decay=0.95, rule="corrected", seed=0)
    with torch.no_grad():
        vq.codebook[1:] = 1000.0  # only code 0 is reachable
    z = blobs(256, torch.Generator().manual_seed(0))
    first = vq(z)
    assert torch.equal(first.counts[1:], torch.zeros(7, dtype=torch.int64))
    assert first.reseeded.tolist() == [False] + [True] * 7
    reseeded = vq.codebook[1:]
    is_batch_row = (reseeded[:, None, :] == z[None]).all(-1).any(1)
    assert is_batch_row.all(), "re-seeded codes are batch vectors"
    assert len(torch.unique(reseeded, dim=0)) == 7, "drawn without replacement"
    second = vq(z)
    assert not second.reseeded.any(), "a re-seeded code is not dead on the next step"
    assert (second.counts[1:] > 0).all(), "re-seeded codes get assignments"
    assert dead_code_rate(second.counts) < dead_code_rate(first.counts) == 7 / 8


def test_reference_rule_reseeds_a_never_used_code_on_every_step_and_the_corrected_rule_does_not():
    # All vectors equal: one code per step takes them all, so most of the 16 codes are never assigned.
    z = torch.ones(32, 2)
    for rule in ("corrected", "reference"):
        vq = EMAVectorQuantizer(num_codes=16, code_dim=2, rule=rule, seed=0)
        first = vq(z)
        assert first.reseeded.sum() == 15, "step 1: every unused code is dead"
        ever_used = first.counts > 0
        for _ in range(4):
            out = vq(z)
            ever_used |= out.counts > 0
            if rule == "corrected":
                assert not out.reseeded.any()
            else:
                assert (~ever_used).any() and out.reseeded[~ever_used].all(), "its statistics stay dead"


def test_perplexity_and_dead_rate_on_hand_made_indices():
    uniform = code_counts(torch.arange(16).repeat(5), 16)
    assert perplexity(uniform) == pytest.approx(16.0, rel=1e-6)
    assert perplexity_norm(uniform) == pytest.approx(1.0, rel=1e-6)
    assert dead_code_rate(uniform) == 0.0
    single = code_counts(torch.full((4, 3, 1), 5), 16)
    assert single.tolist() == [0] * 5 + [12] + [0] * 10
    assert perplexity(single) == pytest.approx(1.0, abs=1e-6)
    assert dead_code_rate(single) == pytest.approx(15 / 16)
    half = code_counts(torch.tensor([0, 1, 0, 1, 2, 3, 2, 3]), 8)  # 4 of 8 codes, evenly
    assert perplexity(half) == pytest.approx(4.0, rel=1e-6) and dead_code_rate(half) == 0.5
    assert math.isnan(perplexity(torch.zeros(4))), "no indices: undefined"


def test_same_seed_or_generator_gives_the_same_codebook():
    def train(seed: int, generator: torch.Generator | None = None) -> torch.Tensor:
        vq = EMAVectorQuantizer(num_codes=16, code_dim=4, rule="reference", seed=seed)
        data = torch.Generator().manual_seed(0)
        for _ in range(5):  # the reference rule re-seeds unused codes every step: many random draws
            vq(torch.randn(8, 4, generator=data), generator=generator)
        return vq.codebook.clone()

    assert torch.equal(train(0), train(0))
    assert not torch.equal(train(0), train(1))
    assert torch.equal(train(1, torch.Generator().manual_seed(7)), train(1, torch.Generator().manual_seed(7)))
    assert not torch.equal(train(1, torch.Generator().manual_seed(7)), train(1, torch.Generator().manual_seed(8)))


def test_state_dict_round_trip_resumes_identically():
    data = torch.Generator().manual_seed(0)
    batches = [torch.randn(8, 4, generator=data) for _ in range(6)]
    a = EMAVectorQuantizer(num_codes=16, code_dim=4, seed=0)
    for z in batches[:3]:
        a(z)
    b = EMAVectorQuantizer(num_codes=16, code_dim=4, seed=99)
    b.load_state_dict(a.state_dict())
    assert int(b.ema_steps) == 3
    for z in batches[3:]:
        assert torch.equal(a(z).reseeded, b(z).reseeded)
    assert torch.equal(a.codebook, b.codebook) and torch.equal(a.ema_count, b.ema_count)


def test_two_phase_schedule_mixes_the_input_and_scales_the_commitment():
    assert [two_phase_alpha(g, 2000, 1000) for g in (0, 1999, 2000, 2500, 3000, 10**6)] == [0, 0, 0, 0.5, 1, 1]
    assert two_phase_alpha(5, 5, 0) == 1.0 and two_phase_alpha(4, 5, 0) == 0.0
    assert two_phase_alpha(0, 0, 0) == 1.0, "schedule off"
    vq = EMAVectorQuantizer(num_codes=4, code_dim=2, commitment=0.1, seed=0)
    z = blobs(64, torch.Generator().manual_seed(0))
    warm = vq(z, alpha=0.0)
    assert torch.equal(warm.quantized, z) and warm.loss.item() == 0.0
    assert int(vq.ema_steps) == 1, "the EMA updates during warm-up"
    half = vq.eval()(z, alpha=0.5)
    full = vq(z, alpha=1.0)
    torch.testing.assert_close(half.quantized, 0.5 * z + 0.5 * full.quantized)
    torch.testing.assert_close(half.loss, 0.5 * full.loss)
    with pytest.raises(WmlabError, match="warm-up"):
        two_phase_alpha(0, -1, 0)


def test_configuration_mistakes_raise_wmlab_error():
    with pytest.raises(WmlabError, match="correct"):
        EMAVectorQuantizer(rule="corected")
    with pytest.raises(WmlabError, match="decay"):
        EMAVectorQuantizer(decay=1.0)
    with pytest.raises(WmlabError, match="splits"):
        EMAVectorQuantizer(code_dim=32)(torch.zeros(3, 16))


def _dp_batches() -> list[torch.Tensor]:
    data = torch.Generator().manual_seed(0)
    # Far from the initial codebook: one code takes step 1, and 15 dead codes exceed the global batch of 10.
    return [torch.randn(10, 4, generator=data) + 100.0 for _ in range(6)]


def _dp_worker(rank: int, init: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    vq = EMAVectorQuantizer(num_codes=16, code_dim=4, seed=0)
    for z in _dp_batches():
        vq(z[:6] if rank == 0 else z[6:])  # uneven shards of the global batch of 10
    torch.save(vq.state_dict(), f"{out}/{rank}.pt")
    dist.destroy_process_group()


def test_two_gloo_processes_keep_the_codebook_of_one_process_on_the_global_batch(tmp_path):
    mp.spawn(_dp_worker, args=(f"file://{tmp_path}/init", str(tmp_path)), nprocs=2)
    single = EMAVectorQuantizer(num_codes=16, code_dim=4, seed=0)
    reseeded = [single(z).reseeded.sum().item() for z in _dp_batches()]
    assert reseeded[:2] == [10, 5], "re-seeding draws from the whole global batch; the rest wait a step"
    for rank in range(2):
        state = torch.load(tmp_path / f"{rank}.pt")
        for key in ("codebook", "ema_count", "ema_sum", "ema_steps"):
            torch.testing.assert_close(state[key], single.state_dict()[key], atol=1e-6, rtol=1e-5)
