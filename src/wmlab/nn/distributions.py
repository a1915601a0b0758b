"""Distributions of DreamerV3 (spec/dali.md §3.2-§3.5, §12.1).

* ``symlog`` / ``symexp`` squash targets of arbitrary scale.
* :class:`TwoHot`: 255 bins on [-20, 20] in symlog space for rewards and values; mean = symexp(E[bin]).
* :class:`OneHotDist`: categorical with 1% unimix and straight-through one-hot samples (RSSM latents, discrete actor).
* :class:`BoundedNormal`: the continuous actor, Normal(tanh(mu), sigma) with sigma in [0.1, 1] (not a squashed Normal).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


def two_hot_bins(num_bins: int = 255, low: float = -20.0, high: float = 20.0, device=None) -> torch.Tensor:
    return torch.linspace(low, high, num_bins, device=device)


class TwoHot:
    """Discrete regression over symlog-spaced bins.

    Args:
        logits: (..., K) bin logits.
        bins: (K,) increasing bin centres in symlog space.
    """

    def __init__(self, logits: torch.Tensor, bins: torch.Tensor):
        self.logits = logits
        self.bins = bins
        self.probs = logits.softmax(-1)

    def mean(self) -> torch.Tensor:
        """Expected value in the original space. Returns (...)."""
        return symexp((self.probs * self.bins).sum(-1))

    def target(self, value: torch.Tensor) -> torch.Tensor:
        """Two-hot encoding of ``value`` (...) in symlog space. Returns (..., K); weight all on the end bins outside."""
        x = symlog(value).clamp(self.bins[0], self.bins[-1])
        above = torch.searchsorted(self.bins, x.contiguous(), right=True).clamp(1, len(self.bins) - 1)
        below = above - 1
        lo, hi = self.bins[below], self.bins[above]
        w_above = ((x - lo) / (hi - lo)).clamp(0, 1)
        return (
            F.one_hot(below, len(self.bins)) * (1 - w_above)[..., None]
            + F.one_hot(above, len(self.bins)) * w_above[..., None]
        )

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Cross-entropy likelihood of ``value`` (...). Returns (...)."""
        return (self.target(value) * self.logits.log_softmax(-1)).sum(-1)


class OneHotDist:
    """Independent categoricals with unimix, one-hot straight-through samples.

    Args:
        logits: (..., C) raw logits (for S latents: (..., S, C)).
        unimix: mixing weight of the uniform distribution (0.01).
    """

    def __init__(self, logits: torch.Tensor, unimix: float = 0.01):
        probs = logits.softmax(-1)
        if unimix > 0:
            probs = (1 - unimix) * probs + unimix / logits.shape[-1]
        self.probs = probs
        self.logits = probs.log()

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One-hot sample with straight-through gradient: onehot + p - sg(p). Returns (..., C)."""
        # inverse-CDF sampling: several times faster than torch.multinomial for many small categoricals
        probs = self.probs.detach()
        u = torch.rand(probs.shape[:-1] + (1,), generator=generator, device=probs.device, dtype=probs.dtype)
        index = (probs.cumsum(-1) < u).sum(-1).clamp(max=probs.shape[-1] - 1)
        onehot = F.one_hot(index, self.probs.shape[-1]).to(self.probs.dtype)
        return onehot + self.probs - self.probs.detach()

    def mode(self) -> torch.Tensor:
        onehot = F.one_hot(self.probs.argmax(-1), self.probs.shape[-1]).to(self.probs.dtype)
        return onehot + self.probs - self.probs.detach()

    def log_prob(self, onehot: torch.Tensor) -> torch.Tensor:
        """Log-probability of a one-hot value, summed over nothing: returns (...) for logits (..., C)."""
        return (onehot * self.logits).sum(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.probs * self.logits).sum(-1)


def categorical_kl(post_logits: torch.Tensor, prior_logits: torch.Tensor) -> torch.Tensor:
    """KL[post || prior] per categorical: (..., S, C) x2 -> (..., S) (sum over S yourself)."""
    return (post_logits.softmax(-1) * (post_logits - prior_logits)).sum(-1)


class BoundedNormal:
    """Continuous actor distribution: Normal(tanh(mu), sigma), sigma = (max - min) * sigmoid(raw + 2) + min.

    Args:
        mean_raw: (..., A) pre-tanh means.
        std_raw: (..., A) raw scales.
    """

    def __init__(self, mean_raw: torch.Tensor, std_raw: torch.Tensor, min_std: float = 0.1, max_std: float = 1.0):
        self.mean = torch.tanh(mean_raw)
        self.std = (max_std - min_std) * torch.sigmoid(std_raw + 2.0) + min_std
        self._normal = torch.distributions.Normal(self.mean, self.std)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterized sample. Returns (..., A)."""
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        """Summed over action dimensions. Returns (...)."""
        return self._normal.log_prob(action).sum(-1)

    def entropy(self) -> torch.Tensor:
        return self._normal.entropy().sum(-1)
