"""Configuration of a Dreamer run. Presets: ``wmlab/presets/dreamer/{tiny,small,paper}.yaml`` (spec/dali.md §11)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from wmlab.errors import WmlabError


@dataclass
class EnvConfig:
    name: str = "pendulum"  #: walker | ball_in_cup | cartpole | pendulum
    modality: Literal["state", "pixels"] = "state"  #: what the world model encodes and decodes
    train_contexts: str = "default"  #: default | single_0 | single_1 | double_box | specific
    n_train_contexts: int = 100  #: contexts sampled once per run for single_* / double_box
    context: dict[str, float] = field(default_factory=dict)  #: the fixed context when train_contexts=specific
    num_envs: int = 1  #: parallel environments (worker processes when > 1)
    action_repeat: int = 1  #: DALI uses the native control step
    image_size: int = 64


@dataclass
class ModelConfig:
    deter: int = 512  #: GRU state size
    hidden: int = 512  #: RSSM hidden layer size
    stoch: int = 32  #: number of categorical latents S
    classes: int = 32  #: classes per latent C
    units: int = 512  #: width of reward / continue heads, actor and critic
    layers: int = 2  #: depth of those heads
    encoder_units: int = 1024  #: vector encoder / decoder MLP width
    encoder_layers: int = 5  #: vector encoder / decoder MLP depth
    cnn_depth: int = 32  #: channels of the first conv stage
    unimix: float = 0.01
    free_nats: float = 1.0
    dyn_scale: float = 0.5
    rep_scale: float = 0.1
    lr: float = 1e-4
    eps: float = 1e-8
    grad_clip: float = 1000.0


@dataclass
class BehaviorConfig:
    horizon: int = 15
    discount: float = 1 - 1 / 333
    lam: float = 0.95
    entropy: float = 3e-4
    slow_critic_fraction: float = 0.02  #: EMA fraction per update
    critic_slowreg: float = 1.0  #: scale of the slow-critic regulariser
    retnorm_decay: float = 0.99
    retnorm_low: float = 0.05  #: percentiles of the return normalisation
    retnorm_high: float = 0.95
    lr: float = 3e-5
    eps: float = 1e-5
    grad_clip: float = 100.0
    #: how imagination reads the continue head: ``mode`` (DreamerV3: 1 if P(continue) > 0.5, else 0) or ``mean``
    #: (DreamerV2: the probability itself discounts). ``mean`` keeps the graded "danger" signal of states the model
    #: cannot yet classify sharply; it did not rescue CartPole (benchmarks/results/dreamer_cartpole_tiny_contmean.json;
    #: ``replay_value_scale`` does).
    imagined_continue: Literal["mode", "mean"] = "mode"
    #: scale of the replay value loss of the later DreamerV3 (arXiv v2, 2024; ``repval`` 0.3 there): the critic also
    #: regresses lambda-returns of the *replayed* sequences (real rewards, real terminations, bootstrapped with the
    #: imagined return of each step), so values fall near real failures even while the continue head misses them.
    #: 0 (default) is the early-2023 DreamerV3 of the spec. On CartPole at ``tiny``, 0.3 reached a last-10 return of
    #: 400 by 31-36k env steps on three seeds, where 0 peaked at 307 by 50k on seed 0
    #: (benchmarks/results/dreamer_learning.md). See :func:`wmlab.dreamer.behavior.replay_returns`.
    replay_value_scale: float = 0.0
    replay_value_lam: float = 0.95  #: lambda of the replayed returns


@dataclass
class TrainConfig:
    steps: int = 500_000  #: env steps, counted over all workers
    batch_size: int = 16  #: B
    batch_length: int = 64  #: T
    train_ratio: float = 512.0  #: replayed steps per env step; updates per env step = ratio / (B T)
    replay_capacity: int = 1_000_000
    replay_chunk: int = 1024  #: steps per replay file on disk
    carry_state: bool = True  #: carry the last posterior of each batch slot into the next batch (DreamerV3 v1)
    log_every: int = 1000  #: env steps between metric records
    checkpoint_every: int = 10_000  #: env steps between checkpoints
    video_every: int = 50_000  #: env steps between open-loop prediction videos (pixel runs)
    stop_return: Optional[float] = None  #: stop early once the mean return of the last 10 episodes reaches this
    device: str = "auto"  #: auto | cpu | cuda
    precision: Literal["fp32", "bf16"] = "fp32"  #: bf16: autocast the update's matmuls and convolutions
    compile: bool = False  #: torch.compile the networks inside the update (the time loop stays in Python)
    eval_every: int = 0  #: env steps between evaluations of the current policy (0: never during training)
    eval_episodes: int = 5  #: episodes per periodic evaluation, on the training contexts


@dataclass
class ContextConfig:
    """DALI context inference (spec/dali.md §5); ignored by ``dreamer`` and ``crssm-*``."""

    encoder: Literal["transformer", "gru", "mlp", "attention"] = "transformer"
    window: int = 64  #: K tokens per window; must be <= train.batch_length
    dim: int = 8  #: d_c
    width: int = 256  #: W
    heads: int = 1
    repr_loss: Literal["forward", "inverse", "both"] = "forward"
    fw_units: int = 128  #: forward / inverse model hidden width
    fw_layers: int = 2
    loss_scale: float = 1.0  #: beta_dali
    crossmodal: bool = False  #: add the cross-modal term chi (DALI-S-chi / DALI-D-chi)
    crossmodal_scale: float = 1.0  #: lambda_chi
    wm_grad: bool = False  #: let L_wm train the context encoder (experimental; the release stops it)
    embed_stopgrad: bool = False  #: pixel tokens: stop L_dali gradients into the CNN
    fw_max_transitions: Optional[int] = None  #: state runs: random valid transitions per window in L_dali (None: all)
    fw_max_transitions_pixels: Optional[int] = None  #: the same for pixel runs (4096-d targets are costly)


VARIANTS = ("dreamer", "crssm-s", "crssm-d", "dali-s", "dali-d")


@dataclass
class DreamerConfig:
    #: dreamer (no context) | crssm-s / crssm-d (ground-truth context) | dali-s / dali-d (inferred context)
    variant: Literal["dreamer", "crssm-s", "crssm-d", "dali-s", "dali-d"] = "dreamer"
    seed: int = 0
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    behavior: BehaviorConfig = field(default_factory=BehaviorConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    context: ContextConfig = field(default_factory=ContextConfig)

    def __post_init__(self) -> None:
        if self.variant.startswith("dali") and self.context.window > self.train.batch_length:
            raise WmlabError(
                f"context.window={self.context.window} exceeds train.batch_length={self.train.batch_length}: "
                "training would never see a full window while acting does; lower the window or lengthen batches"
            )


#: keys a resumed run may change (a longer budget, more frequent logs) without being a different run
RESUMABLE_KEYS = (
    "train.steps",
    "train.stop_return",
    "train.log_every",
    "train.checkpoint_every",
    "train.video_every",
    "train.eval_every",
    "train.eval_episodes",
    "train.device",
    "train.precision",
    "train.compile",
)
