"""The action decoder of ``la`` / ``la-vq`` world models: one latent step -> one normalised macro action (spec §7).

Layout inside a latent run directory::

    decoder/decoder.pt             weights, flags, sizes, frameskip, action statistics, world-model fingerprint,
                                   train pairs, val RMSE, constant-predictor RMSE, per-epoch history (atomic)
    decoder/pairs/<split>/         the pair cache (§7.3), see :mod:`wmlab.latent.decoder_pairs`

Normalisation (§4.6, as in :class:`wmlab.data.features.FeatureWindows`): statistics are per raw 2-d action in units
of ``ACTION_SCALE`` = 100 px, â = (rel_px / 100 - mean) / std; a macro action is fs such rows flattened (dx0, dy0, ...).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wmlab.atomic import atomic_torch_save
from wmlab.errors import WmlabError, unknown_name_error
from wmlab.latent.decoder_pairs import RETRAIN, ensure_pairs, require_latent, world_model_fingerprint
from wmlab.latent.run import load_latent
from wmlab.progress import progress_bar
from wmlab.runs import RunDir

ACTION_SCALE = 100.0  #: px per action unit; FeatureWindows divides rel_actions (px) by it before normalising
FLAGS = ("use_e", "use_z", "use_delta")


@dataclass
class DecoderConfig:
    use_e: bool = True  #: feed the attention-pooled current tokens
    use_z: bool = True  #: feed the latent action
    use_delta: bool = False  #: feed pool(predicted next tokens) - pool(current tokens); needs predicted tokens cached
    dec_dim: int = 128  #: width of each token branch's output
    hidden: int = 256  #: hidden width of the branch MLPs and of the head
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    max_epochs: int = 200
    patience: int = 5  #: epochs without a val-RMSE improvement of at least min_delta before stopping
    min_delta: float = 1e-4
    loss: str = "huber"  #: huber (SmoothL1, beta 1) | mse
    train_pairs: int = 100_000
    val_pairs: int = 10_000
    seed: int = 0  #: pair shuffle, initialisation and batch order
    device: str = "auto"


class ActionDecoder(nn.Module):
    """d(z, e): attention-pooled tokens and a latent action -> a normalised macro action (spec §7.2).

    Every parameter exists whatever the flags (406,506 at E = 384, A = 32); a branch that is off is replaced by its
    learned constant, so the head's input width stays 2 * dec_dim + z_dim.

    Args:
        token_dim: E; z_dim: A; out_dim: fs * 2; use_e, use_z, use_delta: the feature flags;
        dec_dim, hidden: branch output and hidden widths; seed: initialisation seed (the same seed, the same weights).
    """

    def __init__(
        self,
        token_dim: int,
        z_dim: int = 32,
        out_dim: int = 10,
        use_e: bool = True,
        use_z: bool = True,
        use_delta: bool = False,
        dec_dim: int = 128,
        hidden: int = 256,
        seed: int = 0,
    ):
        super().__init__()
        self.token_dim, self.z_dim, self.out_dim = token_dim, z_dim, out_dim
        self.use_e, self.use_z, self.use_delta = use_e, use_z, use_delta
        generator = torch.Generator().manual_seed(seed)
        self.query = nn.Parameter(0.02 * torch.randn(token_dim, generator=generator))
        with torch.random.fork_rng(devices=[]):  # seeded Linear initialisation without touching the global stream
            torch.manual_seed(seed)
            self.e_mlp = nn.Sequential(nn.Linear(token_dim, hidden), nn.GELU(), nn.Linear(hidden, dec_dim))
            self.delta_mlp = nn.Sequential(nn.Linear(token_dim, hidden), nn.GELU(), nn.Linear(hidden, dec_dim))
            width = 2 * dec_dim + z_dim
            self.head = nn.Sequential(
                nn.LayerNorm(width),
                nn.Linear(width, hidden),
                nn.GELU(),
                nn.Linear(hidden, hidden),
                nn.GELU(),
                nn.Linear(hidden, out_dim),
            )
        self.e_const = nn.Parameter(torch.zeros(dec_dim))
        self.delta_const = nn.Parameter(torch.zeros(dec_dim))
        self.z_const = nn.Parameter(torch.zeros(z_dim))

    @property
    def flags(self) -> dict[str, bool]:
        return {name: bool(getattr(self, name)) for name in FLAGS}

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """Attention pooling with the shared query. tokens (B, P, E) -> (B, E)."""
        weights = torch.softmax(tokens @ self.query / math.sqrt(self.token_dim), dim=-1)
        return (weights[..., None] * tokens).sum(-2)

    def forward(self, tokens: torch.Tensor, z: torch.Tensor, pred_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, P, E) current frame, z (B, A), pred_tokens (B, P, E) or None -> macro actions (B, out_dim).

        ``pred_tokens`` is needed only when ``use_delta`` is on.
        """
        batch = tokens.shape[0]
        if tokens.dim() != 3 or tokens.shape[-1] != self.token_dim:
            raise WmlabError(f"decoder tokens must be (B, P, {self.token_dim}); got {tuple(tokens.shape)}")
        e = self.pool(tokens) if self.use_e or self.use_delta else None
        if self.use_e:
            e_part = self.e_mlp(F.layer_norm(e, (self.token_dim,)))
        else:
            e_part = self.e_const.expand(batch, -1)
        if self.use_delta:
            if pred_tokens is None:
                raise WmlabError(
                    "this decoder uses the delta branch (use_delta=True) and needs the predicted next-frame tokens; "
                    "pass pred_tokens (the world model's prediction given the current tokens and z)"
                )
            delta = self.pool(pred_tokens) - e
            delta_part = self.delta_mlp(F.layer_norm(delta, (self.token_dim,)))
        else:
            delta_part = self.delta_const.expand(batch, -1)
        z_part = z if self.use_z else self.z_const.expand(batch, -1)
        return self.head(torch.cat([e_part, delta_part, z_part.to(e_part.dtype)], -1))


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _batch(arrays: dict[str, np.ndarray], index: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
    index = np.sort(index)  # sequential reads from the memory maps; order inside a batch does not matter
    return {k: torch.from_numpy(np.asarray(v[index], np.float32)).to(device) for k, v in arrays.items()}


@torch.no_grad()
def pair_rmse(decoder: ActionDecoder, arrays: dict[str, np.ndarray], batch_size: int = 1024) -> float:
    """sqrt(mean over pairs and output dims of (y^ - y)^2), in normalised action units."""
    device = next(decoder.parameters()).device
    total, n = 0.0, len(arrays["y"])
    for start in range(0, n, batch_size):
        b = _batch(arrays, np.arange(start, min(n, start + batch_size)), device)
        total += float(((decoder(b["tokens"], b["z"], b.get("pred")) - b["y"]) ** 2).sum())
    return math.sqrt(total / (n * arrays["y"].shape[1]))


def train_decoder(
    run: str | Path, cfg: DecoderConfig, rebuild: bool = False, show_progress: bool = True
) -> dict[str, Any]:
    """Train the action decoder of latent run ``run`` (spec §7.3-§7.5); writes ``RUN/decoder/decoder.pt``.

    AdamW, Huber (beta 1) or MSE, no gradient clipping; early stopping on validation RMSE with ``patience`` and
    ``min_delta``, after which the best epoch's weights are restored. Returns the summary that is also stored.
    """
    if cfg.loss not in ("huber", "mse"):
        raise unknown_name_error("decoder loss", cfg.loss, ("huber", "mse"))
    model, latent_cfg, checkpoint = load_latent(run)
    require_latent(model)
    fingerprint = world_model_fingerprint(checkpoint)
    device = _device(cfg.device)
    sets, metas = {}, {}
    for split, count in (("train", cfg.train_pairs), ("val", cfg.val_pairs)):
        arrays, metas[split] = ensure_pairs(
            run, split, count, cfg.use_delta, model, latent_cfg, fingerprint, cfg.seed, device, rebuild, show_progress
        )
        sets[split] = {k: v for k, v in arrays.items() if k != "pred" or cfg.use_delta}
    del model
    train, val = sets["train"], sets["val"]
    token_dim, z_dim, out_dim = train["tokens"].shape[-1], train["z"].shape[-1], train["y"].shape[-1]
    flags = {name: getattr(cfg, name) for name in FLAGS}
    decoder = ActionDecoder(token_dim, z_dim, out_dim, **flags, dec_dim=cfg.dec_dim, hidden=cfg.hidden, seed=cfg.seed)
    decoder = decoder.to(device).train()
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    y_mean = np.asarray(train["y"], np.float64).mean(0)
    constant_rmse = float(np.sqrt(((np.asarray(val["y"], np.float64) - y_mean) ** 2).mean()))
    n = len(train["y"])
    best_rmse, best_epoch, best_state, waited, history = math.inf, 0, None, 0, []
    with progress_bar("train decoder", cfg.max_epochs, "epochs", show_progress) as advance:
        for epoch in range(1, cfg.max_epochs + 1):
            decoder.train()
            order = np.random.default_rng([cfg.seed, epoch]).permutation(n)
            loss_sum = 0.0
            for start in range(0, n, cfg.batch_size):
                b = _batch(train, order[start : start + cfg.batch_size], device)
                predicted = decoder(b["tokens"], b["z"], b.get("pred"))
                if cfg.loss == "huber":
                    loss = F.smooth_l1_loss(predicted, b["y"], beta=1.0)
                else:
                    loss = F.mse_loss(predicted, b["y"])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += float(loss.detach()) * len(b["y"])
            decoder.eval()
            rmse = pair_rmse(decoder, val)
            history.append({"epoch": epoch, "train_loss": loss_sum / n, "val_rmse": rmse})
            if rmse < best_rmse - cfg.min_delta:
                best_rmse, best_epoch, waited = rmse, epoch, 0
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in decoder.state_dict().items()})
            else:
                waited += 1
            advance(1, val_rmse=rmse, best=best_rmse)
            if waited >= cfg.patience:
                break
    decoder.load_state_dict(best_state)
    summary = {
        "path": str(RunDir(run).path / "decoder" / "decoder.pt"),
        "val_rmse": best_rmse,
        "constant_rmse": constant_rmse,
        "rmse_ratio": best_rmse / constant_rmse if constant_rmse > 0 else math.nan,
        "best_epoch": best_epoch,
        "epochs": len(history),
        "train_pairs": n,
        "val_pairs": len(val["y"]),
        "fingerprint": fingerprint,
    }
    payload = {
        "state_dict": best_state,
        "flags": flags,
        "token_dim": int(token_dim),
        "z_dim": int(z_dim),
        "out_dim": int(out_dim),
        "dec_dim": cfg.dec_dim,
        "hidden": cfg.hidden,
        "frameskip": latent_cfg.model.frameskip,
        "variant": latent_cfg.model.variant,
        "statistics": metas["train"]["statistics"],  # what normalised y: denormalise plans with these
        "config": asdict(cfg),
        "history": history,
        **{k: v for k, v in summary.items() if k != "path"},
    }
    atomic_torch_save(payload, summary["path"])
    return summary


def load_decoder(
    path_or_run: str | Path, expect: dict[str, Any] | None = None, fingerprint: str | None = None
) -> tuple[ActionDecoder, dict[str, Any]]:
    """(decoder in eval mode, metadata) from ``decoder.pt`` or a run directory holding ``decoder/decoder.pt``.

    ``expect``: flags the caller asks for (``use_e``, ``use_z``, ``use_delta``; None values ignored); they must equal
    the stored ones. ``fingerprint``: the world model the caller plans with (:func:`world_model_fingerprint`).
    """
    path = Path(path_or_run)
    run = path
    if path.is_dir():
        path = path / "decoder" / "decoder.pt"
    else:
        run = path.parent.parent
    if not path.is_file():
        raise WmlabError(f"no action decoder at {path}; {RETRAIN.format(run=run)}")
    try:
        meta = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise WmlabError(f"{path} is damaged ({type(e).__name__}: {e}); delete it and {RETRAIN.format(run=run)}") from e
    stored = meta["flags"]
    wrong = {k: v for k, v in (expect or {}).items() if v is not None and k in FLAGS and bool(v) != stored[k]}
    if wrong:
        asked = ", ".join(f"{k}={v}" for k, v in wrong.items())
        have = ", ".join(f"{k}={v}" for k, v in stored.items())
        raise WmlabError(
            f"the decoder {path} was trained with {have}, but {asked} was requested; drop the flags (they are read "
            f"from the file) or retrain with the flags you want: `wmlab train decoder {run}`"
        )
    if fingerprint is not None and fingerprint != meta["fingerprint"]:
        raise WmlabError(
            f"the decoder {path} was trained for a different world-model checkpoint (step:hash {meta['fingerprint']} "
            f"!= {fingerprint}); retrain it with `wmlab train decoder {run}`"
        )
    decoder = ActionDecoder(
        meta["token_dim"], meta["z_dim"], meta["out_dim"], **stored, dec_dim=meta["dec_dim"], hidden=meta["hidden"]
    )
    decoder.load_state_dict(meta.pop("state_dict"))
    return decoder.eval(), meta


def decode_plan(decoder: ActionDecoder, tokens: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
    """Decode a plan (spec §7.6) in one forward pass over B and H.

    tokens (B, H + 1, P, E): the rollout, frame 0 the encoded observation and the rest imagined; latents (B, H, A).
    Step t uses tokens[:, t] as the current frame, tokens[:, t + 1] as the predicted one and latents[:, t].
    Returns normalised macro actions (B, H, out_dim).
    """
    batch, horizon = latents.shape[:2]
    if tokens.shape[:2] != (batch, horizon + 1):
        raise WmlabError(f"decode_plan needs tokens (B, H + 1, P, E) for latents (B, H, A); got {tuple(tokens.shape)}")
    current, predicted = tokens[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(0, 1)
    return decoder(current, latents.flatten(0, 1), predicted).reshape(batch, horizon, -1)


def denormalise_macro(actions: Any, action_mean: Any, action_std: Any) -> Any:
    """Normalised macro actions (..., H, fs * 2) -> relative env actions in px (..., H * fs, 2) (spec §7.6, §8.8).

    px = (â * std + mean) * 100, with per-axis (2,) statistics in units of 100 px, exactly inverting
    :class:`~wmlab.data.features.FeatureWindows`. Works on numpy arrays and torch tensors.
    """
    if actions.shape[-1] % 2:
        raise WmlabError(f"a macro action has fs * 2 entries; got last dimension {actions.shape[-1]}")
    shape = (*actions.shape[:-2], actions.shape[-2] * actions.shape[-1] // 2, 2)
    if isinstance(actions, torch.Tensor):
        mean = torch.as_tensor(action_mean, dtype=actions.dtype, device=actions.device)
        std = torch.as_tensor(action_std, dtype=actions.dtype, device=actions.device)
    else:
        actions, mean, std = np.asarray(actions), np.asarray(action_mean), np.asarray(action_std)
    if tuple(mean.shape) != (2,) or tuple(std.shape) != (2,):
        raise WmlabError(f"action statistics must be per axis, shape (2,); got {tuple(mean.shape)}, {tuple(std.shape)}")
    return (actions.reshape(shape) * std + mean) * ACTION_SCALE
