"""DALI context inference: causal token windows, context encoders and dynamics-alignment losses (spec/dali.md §5).

Tokens u_k = [x_k, a_{k-1}] (state vector or CNN embedding, previous action; a_{-1} = 0 at an episode start). The
context c_t is computed from the window of the last K tokens ending at t, never crossing an episode start: positions
before the first available step of the episode hold a copy of that step's token. Training gathers all B*T windows
with one index tensor; acting keeps a per-env buffer of the last K tokens and pads it the same way, so both paths
see identical windows (tested).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from wmlab.nn.layers import DenseBlock, init_hidden_, init_output_, layer_norm


def window_index(is_first: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal window gather indices and validity mask for every step of a batch of sequences.

    is_first: (B, T) bool. Returns idx (B, T, K) long with idx[b, t, j] = max(t - K + 1 + j, first_t) and mask
    (B, T, K) bool with mask[b, t, j] = (t - K + 1 + j >= first_t), where first_t is the last episode start at or
    before t (or 0, the first step of the sequence).
    """
    batch, length = is_first.shape
    steps = torch.arange(length, device=is_first.device)
    starts = torch.where(is_first, steps, torch.zeros_like(steps))
    starts[:, 0] = 0
    first = torch.cummax(starts, dim=1).values  # (B, T)
    raw = steps[:, None] - window + 1 + torch.arange(window, device=is_first.device)[None]  # (T, K)
    mask = raw[None] >= first[..., None]
    idx = torch.maximum(raw[None].expand(batch, -1, -1), first[..., None])
    return idx, mask


def gather_windows(values: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """values (B, T, D), idx (B, T, K) -> windows (B, T, K, D)."""
    batch, length, window = idx.shape
    flat = idx.reshape(batch, length * window, 1).expand(-1, -1, values.shape[-1])
    return torch.gather(values, 1, flat).reshape(batch, length, window, values.shape[-1])


class WindowAttention(nn.Module):
    """Single-head (or multi-head) softmax attention inside a window, no mask, no positional encoding."""

    def __init__(self, width: int, heads: int = 1):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        init_hidden_(self.qkv.weight)
        init_output_(self.out.weight)
        nn.init.zeros_(self.qkv.bias)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, K, W) -> (N, K, W)."""
        n, k, w = x.shape
        q, key, v = self.qkv(x).reshape(n, k, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        attention = (q @ key.transpose(-1, -2) / math.sqrt(w // self.heads)).softmax(-1)
        return self.out((attention @ v).transpose(1, 2).reshape(n, k, w))


class ContextEncoder(nn.Module):
    """g_phi: one context vector per window of K tokens.

    Args:
        kind: ``transformer`` (pre-LN block, flatten, Dense), ``gru``, ``mlp`` or ``attention`` (spec §5.3).
        token_dim: D_x + A.
        window: K.
        width: W; heads: attention heads; dim: d_c.
    """

    def __init__(self, kind: str, token_dim: int, window: int, width: int = 256, heads: int = 1, dim: int = 8):
        super().__init__()
        self.kind, self.window, self.dim = kind, window, dim
        if kind == "mlp":
            self.proj = nn.Identity()
            self.body = nn.Sequential(DenseBlock(window * token_dim, width), DenseBlock(width, width))
            out_in = width
        else:
            self.proj = DenseBlock(token_dim, width)
            if kind == "transformer":
                self.norm1, self.attention, self.norm2 = (
                    layer_norm(width),
                    WindowAttention(width, heads),
                    layer_norm(width),
                )
                self.ffn = nn.Sequential(DenseBlock(width, width), DenseBlock(width, width))
                out_in = window * width
            elif kind == "attention":
                self.norm1, self.attention = layer_norm(width), WindowAttention(width, heads)
                out_in = window * width
            elif kind == "gru":
                self.cell = nn.Linear(2 * width, 3 * width)
                init_hidden_(self.cell.weight)
                nn.init.zeros_(self.cell.bias)
                self.after = DenseBlock(width, width)
                out_in = width
            else:
                raise ValueError(f"unknown context encoder {kind!r}")
        self.out = DenseBlock(out_in, dim)

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        """Per-token projection (commutes with window gathering). (..., D) -> (..., W) (identity for ``mlp``)."""
        return self.proj(tokens)

    def encode_projected(self, windows: torch.Tensor) -> torch.Tensor:
        """Projected windows (N, K, W) -> contexts (N, d_c)."""
        n = windows.shape[0]
        if self.kind == "mlp":
            return self.out(self.body(windows.reshape(n, -1)))
        if self.kind == "transformer":
            y = windows + self.attention(self.norm1(windows))
            y = y + self.ffn(self.norm2(y))
            return self.out(y.reshape(n, -1))
        if self.kind == "attention":
            return self.out(self.attention(self.norm1(windows)).reshape(n, -1))
        h = windows.new_zeros(n, windows.shape[-1])
        for k in range(windows.shape[1]):
            reset, cand, update = self.cell(torch.cat([h, windows[:, k]], -1)).chunk(3, -1)
            cand = torch.tanh(torch.sigmoid(reset) * cand)
            update = torch.sigmoid(update - 1.0)
            h = update * cand + (1 - update) * h
        return self.out(self.after(h))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Raw token windows (N, K, D) -> contexts (N, d_c) (the acting path)."""
        return self.encode_projected(self.project(windows))

    def all_windows(
        self, tokens: torch.Tensor, is_first: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Contexts of every causal window of a batch (the training path, one encoder call).

        tokens (B, T, D), is_first (B, T). Returns contexts (B, T, d_c), idx and mask (B, T, K).
        """
        idx, mask = window_index(is_first, self.window)
        windows = gather_windows(self.project(tokens), idx)  # project once per step, then gather
        batch, length = tokens.shape[:2]
        context = self.encode_projected(windows.flatten(0, 1)).reshape(batch, length, self.dim)
        return context, idx, mask


class TransitionModel(nn.Module):
    """Forward model f_psi([x_k, a_k, c]) -> x_{k+1} or inverse model i_psi([x_k, x_{k+1}, c]) -> a_k.

    MLP with ``layers`` hidden layers of ``units`` SiLU units, no norm, biases; uniform fan-avg init. The first layer
    is split so its token part runs once per step and its context part once per window (spec §5.5).
    """

    def __init__(self, input_dim: int, context_dim: int, output_dim: int, units: int = 128, layers: int = 2):
        super().__init__()
        self.first = nn.Linear(input_dim, units)
        self.first_context = nn.Linear(context_dim, units, bias=False)
        hidden = [nn.Linear(units, units) for _ in range(layers - 1)]
        self.hidden = nn.ModuleList(hidden)
        self.out = nn.Linear(units, output_dim)
        for layer in (self.first, self.first_context, *hidden, self.out):
            init_output_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

    def forward(self, step_part: torch.Tensor, context_part: torch.Tensor) -> torch.Tensor:
        """step_part = first(inputs) (..., U), context_part = first_context(c) broadcastable -> (..., out)."""
        x = torch.nn.functional.silu(step_part + context_part)
        for layer in self.hidden:
            x = torch.nn.functional.silu(layer(x))
        return self.out(x)


def alignment_loss(
    model: TransitionModel,
    kind: str,
    x: torch.Tensor,
    action: torch.Tensor,
    context: torch.Tensor,
    idx: torch.Tensor,
    mask: torch.Tensor,
    max_transitions: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L_fw or L_inv of every window (spec §5.5), averaged over windows with at least one valid transition.

    x (B, T, D_x) token features, action (B, T, A) with action[:, k] = a_k (the action taken at step k), context
    (B, T, d_c) with gradient, idx / mask (B, T, K) from :func:`window_index`. ``max_transitions`` scores a random
    subset of that many window positions per window (cheaper for 4096-d pixel targets).
    """
    src, dst = idx[..., :-1], idx[..., 1:]  # transition j: step k_j -> k_j + 1
    valid = mask[..., :-1].float()  # (B, T, K-1); mask[j] implies the successor is real and in the same episode
    if max_transitions is not None and max_transitions < src.shape[-1]:
        noise = torch.rand(src.shape, generator=generator, device=src.device)
        keep = noise.argsort(-1)[..., :max_transitions]
        src, dst, valid = src.gather(-1, keep), dst.gather(-1, keep), valid.gather(-1, keep)
    if kind == "forward":
        step_part = gather_windows(model.first(torch.cat([x, action], -1)), src)
        target = gather_windows(x, dst)
    else:
        pair = torch.cat([gather_windows(x, src), gather_windows(x, dst)], -1)
        step_part = model.first(pair)
        target = gather_windows(action, src)
    prediction = model(step_part, model.first_context(context)[..., None, :])
    error = (prediction - target).pow(2).mean(-1)  # (1/D) ||.||^2
    count = valid.sum(-1)
    per_window = (error * valid).sum(-1) / count.clamp(min=1)
    has = count > 0
    return per_window[has].mean() if has.any() else per_window.sum() * 0


class CrossModal(nn.Module):
    """Cross-modal term chi (spec §5.6): ties the context to the RSSM state with two linear maps.

    A: d_c -> deter + S C (Linear with bias; its output is stop-gradiented, so it stays a fixed random projection);
    B: deter + S C -> d_c (Linear -> LN -> SiLU).
    """

    def __init__(self, context_dim: int, feature_dim: int):
        super().__init__()
        self.to_state = nn.Linear(context_dim, feature_dim)
        init_hidden_(self.to_state.weight)
        nn.init.zeros_(self.to_state.bias)
        self.to_context = DenseBlock(feature_dim, context_dim)

    def loss(
        self,
        rssm,
        post: dict[str, torch.Tensor],
        embed: torch.Tensor,
        batch: dict[str, torch.Tensor],
        context: torch.Tensor,
        posterior_context: torch.Tensor | None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One-step re-filter from every stop-gradiented posterior s_t (t < T - 1, not across episode starts).

        post: (B, T, ...); embed (B, T, E); context (B, T, d_c) with gradient; posterior_context (B, T, d_c) for
        dali-s (stop-gradiented) or None. Returns the mean of L_chi over valid (b, t).
        """
        start = {k: v[:, :-1].detach() for k, v in post.items()}
        action = batch["prev_action"][:, 1:]  # a_t, the action taken at t
        deter = rssm.transition(start, action, context[:, :-1].detach())
        pctx = None if posterior_context is None else posterior_context[:, 1:]
        z = rssm.obs_step({"deter": deter.detach()}, embed[:, 1:], pctx, generator)["stoch"]
        state = torch.cat([deter, z.flatten(-2)], -1)  # s^chi_{t+1}
        first = (state - self.to_state(context[:, :-1]).detach()).pow(2).mean(-1)
        second = (self.to_context(state.detach()) - context[:, :-1]).pow(2).mean(-1)
        valid = ~batch["is_first"][:, 1:]
        per_step = first + second
        return per_step[valid].mean() if valid.any() else per_step.sum() * 0
