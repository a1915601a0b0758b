"""Online Dreamer training: collect with the policy in (vector) environments, replay, update, log, checkpoint.

Read it top to bottom: ``train_dreamer`` opens (or resumes) the run, builds environments, agent and replay, then
loops: act -> store -> step the environments -> update at the train ratio -> log -> checkpoint. Re-running the same
command on the same run directory resumes from the newest checkpoint with model, optimisers, replay, counters and
random states restored; steps collected after that checkpoint were lost with the process and are dropped.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from wmlab.config import to_dict
from wmlab.data.replay import Replay
from wmlab.dreamer.agent import DreamerAgent, resolve_device
from wmlab.dreamer.config import RESUMABLE_KEYS, DreamerConfig
from wmlab.dreamer.policy import DreamerPolicy, evaluate
from wmlab.dreamer.world_model import openloop_images
from wmlab.envs import make, make_vector
from wmlab.errors import WmlabError
from wmlab.locks import exclusive_writer
from wmlab.media import write_video
from wmlab.progress import progress_bar, say, start_line
from wmlab.runs import Checkpointer, MetricLogger, RunDir, open_run, seed_everything, truncate_metrics

#: metrics shown on the plain progress line printed at every logging step when stdout is not a terminal
LINE_METRICS = {"wm/loss": "wm_loss", "ac/actor_loss": "actor_loss", "ac/critic_loss": "critic_loss"}


def env_kwargs(cfg: DreamerConfig) -> dict[str, Any]:
    """Arguments of :func:`wmlab.envs.make` for a run's training environments (GT context always observed: the
    replay stores it for analysis; the ``dreamer`` variant never reads it)."""
    e = cfg.env
    kwargs: dict[str, Any] = {
        "obs": "state" if e.modality == "state" else "pixels",
        "context_obs": True,
        "action_repeat": e.action_repeat,
        "image_size": e.image_size,
        "n_train_contexts": e.n_train_contexts,
    }
    if e.train_contexts == "specific":
        kwargs["context"] = e.context
    else:
        if e.context:
            raise WmlabError("env.context is only used with env.train_contexts=specific")
        kwargs["contexts"] = e.train_contexts
    return kwargs


def make_train_envs(cfg: DreamerConfig) -> gym.vector.VectorEnv:
    kwargs = env_kwargs(cfg)
    if cfg.env.num_envs == 1:  # no worker process: cheaper for fast tasks
        return gym.vector.SyncVectorEnv([lambda: make(cfg.env.name, seed=cfg.seed, **kwargs)])
    return make_vector(cfg.env.name, cfg.env.num_envs, seed=cfg.seed, **kwargs)


def action_spec(space: gym.Space) -> tuple[int, bool]:
    """(action size, discrete) of a single environment's action space."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n), True
    return int(np.prod(space.shape)), False


@dataclass
class Counters:
    env_steps: int = 0
    updates: int = 0
    episodes: int = 0
    updates_due: float = 0.0


@dataclass
class EpisodeTracker:
    """Running returns and lengths per env; finished episodes are kept until logged."""

    num_envs: int
    returns: np.ndarray = field(init=False)
    lengths: np.ndarray = field(init=False)
    finished: list[tuple[float, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.returns = np.zeros(self.num_envs)
        self.lengths = np.zeros(self.num_envs, int)

    def step(self, reward: np.ndarray, done: np.ndarray) -> None:
        self.returns += reward
        self.lengths += 1
        for i in np.flatnonzero(done):
            self.finished.append((float(self.returns[i]), int(self.lengths[i])))
            self.returns[i], self.lengths[i] = 0.0, 0


@dataclass
class Schedule:
    """The env steps at which each periodic job last ran. Saved in checkpoints, so a resumed run logs, evaluates and
    checkpoints at the same steps as an uninterrupted one."""

    log: int = 0
    checkpoint: int = 0
    video: int = 0
    eval: int = 0


class MeanMetrics:
    """Averages of scalar metrics since the last ``flush`` (``sums`` and ``counts`` are saved in checkpoints)."""

    def __init__(self, sums: dict[str, float] | None = None, counts: dict[str, int] | None = None) -> None:
        self.sums: dict[str, float] = dict(sums or {})
        self.counts: dict[str, int] = dict(counts or {})

    def add(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1

    def mean(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums}

    def flush(self) -> dict[str, float]:
        out = self.mean()
        self.sums, self.counts = {}, {}
        return out


def _replay_step(obs: dict[str, np.ndarray], action, prev_action, reward, is_first, is_last, is_terminal):
    step = {k: v for k, v in obs.items() if k in ("state", "image", "context")}
    step.update(
        action=np.asarray(action, np.float32),
        prev_action=np.asarray(prev_action, np.float32),
        reward=np.asarray(reward, np.float32),
        is_first=np.asarray(is_first, bool),
        is_last=np.asarray(is_last, bool),
        is_terminal=np.asarray(is_terminal, bool),
    )
    return step


def train_dreamer(cfg: DreamerConfig, run_path: str | Path, show_progress: bool = True) -> dict[str, Any]:
    """Train (or resume) a Dreamer run in ``run_path``. Returns the final counters and the last episode returns.

    Another process training the same run folder at the same time is refused (:mod:`wmlab.locks`)."""
    with exclusive_writer(run_path, "run"):
        return _train_dreamer(cfg, run_path, show_progress)


def _train_dreamer(cfg: DreamerConfig, run_path: str | Path, show_progress: bool) -> dict[str, Any]:
    # build one env first: a bad env name or context fails here, before a run directory exists that the corrected
    # command would then refuse as "a different config"
    make(cfg.env.name, seed=cfg.seed, **env_kwargs(cfg)).close()
    run, resumed = open_run(run_path, cfg, RESUMABLE_KEYS)
    np_rng, _ = seed_everything(cfg.seed)
    device = resolve_device(cfg.train.device)
    envs = make_train_envs(cfg)
    action_dim, discrete = action_spec(envs.single_action_space)
    obs_space = envs.single_observation_space
    obs_dim = int(obs_space["state"].shape[0]) if "state" in obs_space.spaces else 0
    agent = DreamerAgent(cfg, obs_dim, action_dim, discrete, device)
    t = cfg.train
    batch_steps = t.batch_size * t.batch_length
    checkpointer = Checkpointer(run.checkpoints_dir)
    counters = Counters()
    checkpoint = checkpointer.load_latest() if resumed else None
    # what an uninterrupted run would carry on with; checkpoints written before these were saved lack them
    saved = checkpoint.get("logging", {}) if checkpoint is not None else {}
    if checkpoint is not None:
        agent.load_training_state(checkpoint["agent"])
        counters = Counters(**checkpoint["counters"])
        np_rng.bit_generator.state = checkpoint["np_rng"]
    # the replay as it was at the checkpoint (empty without one): later steps died with the process
    replay_steps = checkpoint["replay_steps"] if checkpoint is not None else [0] * cfg.env.num_envs
    replay = Replay.load(
        run.replay_dir,
        t.replay_capacity,
        t.batch_length,
        cfg.env.num_envs,
        t.replay_chunk,
        steps_per_worker=replay_steps,
    )
    logged_until = truncate_metrics(run.metrics_path, counters.env_steps)
    say(_start_line(run, cfg, resumed, checkpoint, counters, saved, logged_until), show_progress)
    logger = MetricLogger(run)
    if checkpoint is not None:  # fresh episodes after a resume, drawn from the resume point
        obs, _ = envs.reset(seed=int(np.random.SeedSequence([cfg.seed, counters.env_steps]).generate_state(1)[0]))
    else:
        obs, _ = envs.reset()
    n = envs.num_envs
    is_first = np.ones(n, bool)
    reward = np.zeros(n, np.float32)
    prev_action = np.zeros((n, action_dim), np.float32)
    policy_state = agent.initial_policy_state(n)
    episodes = EpisodeTracker(n)
    train_metrics = MeanMetrics(*saved.get("train_metrics", (None, None)))
    schedule = Schedule(**saved["schedule"]) if "schedule" in saved else Schedule(*[counters.env_steps] * 4)
    eval_env = None
    clock, clock_steps, clock_updates = time.perf_counter(), counters.env_steps, counters.updates
    throughput = (0.0, 0.0)  # env steps/s and updates/s of the last logging interval, for the progress bar
    recent_returns: list[float] = list(saved.get("recent_returns", []))
    losses: dict[str, float] = {}  # the main losses of the latest logging step, for the plain progress line

    def save_checkpoint() -> None:
        replay.save()
        checkpointer.save(
            counters.env_steps,
            {
                "agent": agent.training_state(),
                "counters": vars(counters).copy(),
                "np_rng": np_rng.bit_generator.state,
                "replay_steps": replay.steps_per_worker,
                "config": to_dict(cfg),  # plain data: checkpoints stay readable when config classes evolve
                "logging": {
                    "schedule": vars(schedule).copy(),
                    "recent_returns": list(recent_returns),
                    "train_metrics": (dict(train_metrics.sums), dict(train_metrics.counts)),
                    "episode_lengths": episodes.lengths.tolist(),  # episodes in progress, cut by a resume
                },
            },
        )

    with ExitStack() as stack:
        stack.callback(envs.close)
        stack.callback(logger.close)
        update_bar = stack.enter_context(progress_bar(f"train {cfg.env.name}", t.steps, "env steps", show_progress))
        update_bar(counters.env_steps)
        while counters.env_steps < t.steps:
            prefill = replay.num_windows < batch_steps
            actions, policy_state = agent.act(obs, is_first, policy_state)
            if prefill:  # uniform random actions until the replay holds B*T windows
                if discrete:
                    actions = np.eye(action_dim, dtype=np.float32)[np_rng.integers(0, action_dim, n)]
                else:
                    actions = np_rng.uniform(-1, 1, (n, action_dim)).astype(np.float32)
                policy_state["action"] = torch.as_tensor(actions, device=agent.device)
            replay.add_batch(
                _replay_step(obs, actions, prev_action, reward, is_first, np.zeros(n, bool), np.zeros(n, bool))
            )
            env_actions = actions.argmax(-1) if discrete else actions
            next_obs, reward, terminated, truncated, info = envs.step(env_actions)
            reward = reward.astype(np.float32)
            done = terminated | truncated
            episodes.step(reward, done)
            for i in np.flatnonzero(done):  # the final observation of an episode, then the next one's first
                final = {k: v for k, v in info["final_observation"][i].items()}
                replay.add(
                    _replay_step(final, np.zeros(action_dim), actions[i], reward[i], False, True, terminated[i]),
                    worker=i,
                )
            prev_action = np.where(done[:, None], 0.0, actions).astype(np.float32)
            reward = np.where(done, 0.0, reward).astype(np.float32)
            is_first = done.copy()
            obs = next_obs
            counters.env_steps += n

            if not prefill:
                counters.updates_due += n * t.train_ratio / batch_steps
                while counters.updates_due >= 1:
                    train_metrics.add(agent.train_step(replay.sample(t.batch_size, np_rng)))
                    counters.updates += 1
                    counters.updates_due -= 1

            for ret, length in episodes.finished:
                counters.episodes += 1
                recent_returns = (recent_returns + [ret])[-10:]
                logger.log(counters.env_steps, {"episode/return": ret, "episode/length": length})
            episodes.finished.clear()

            # the last step of a run always logs, off schedule: it leaves the schedule and the averages running, so
            # a longer run resumed from here logs what an uninterrupted one would
            on_schedule = counters.env_steps - schedule.log >= t.log_every
            log_now = on_schedule or counters.env_steps >= t.steps
            if log_now:
                now = time.perf_counter()
                record = train_metrics.flush() if on_schedule else train_metrics.mean()
                record.update(
                    {
                        "perf/env_steps_per_s": (counters.env_steps - clock_steps) / (now - clock),
                        "perf/updates_per_s": (counters.updates - clock_updates) / (now - clock),
                        "progress/updates": counters.updates,
                        "progress/episodes": counters.episodes,
                        "progress/replay_steps": len(replay),
                    }
                )
                if recent_returns:
                    record["episode/return_last10"] = float(np.mean(recent_returns))
                logger.log(counters.env_steps, record)
                throughput = (round(record["perf/env_steps_per_s"], 1), round(record["perf/updates_per_s"], 2))
                losses = {short: float(record[key]) for key, short in LINE_METRICS.items() if key in record}
                if on_schedule:
                    clock, clock_steps, clock_updates = now, counters.env_steps, counters.updates
                    schedule.log = counters.env_steps
            if cfg.env.modality == "pixels" and counters.env_steps - schedule.video >= t.video_every and not prefill:
                _write_openloop_video(agent, replay, np_rng, run, counters.env_steps)
                schedule.video = counters.env_steps
            if t.eval_every and counters.env_steps - schedule.eval >= t.eval_every and not prefill:
                if eval_env is None:
                    eval_env = make(cfg.env.name, seed=cfg.seed, worker_index=n, **env_kwargs(cfg))
                    stack.callback(eval_env.close)
                result = evaluate(DreamerPolicy(agent), eval_env, t.eval_episodes, seed=counters.env_steps)
                logger.log(counters.env_steps, {"eval/return": result["mean"], "eval/return_std": result["std"]})
                schedule.eval = counters.env_steps
            if counters.env_steps - schedule.checkpoint >= t.checkpoint_every:
                schedule.checkpoint = counters.env_steps
                save_checkpoint()
            stats = {"upd": counters.updates, "steps/s": throughput[0], "upd/s": throughput[1]}
            if recent_returns:
                stats["return10"] = float(np.mean(recent_returns))
            update_bar(n, line=log_now, **stats, **(losses if log_now else {}))
            if t.stop_return is not None and len(recent_returns) == 10 and np.mean(recent_returns) >= t.stop_return:
                break
        save_checkpoint()
    return {
        "env_steps": counters.env_steps,
        "updates": counters.updates,
        "episodes": counters.episodes,
        "return_last10": float(np.mean(recent_returns)) if recent_returns else None,
        "resumed": resumed,
    }


def _start_line(
    run: RunDir,
    cfg: DreamerConfig,
    resumed: bool,
    checkpoint: dict[str, Any] | None,
    counters: Counters,
    saved: dict[str, Any],
    logged_until: int,
) -> str:
    """The one line printed at start: the run, and for a resume exactly how it differs from an uninterrupted run."""
    lengths = [int(x) for x in saved.get("episode_lengths", []) if x > 0]
    notes = []
    if lengths:
        notes.append(
            f"{len(lengths)} episode(s) in progress there (after {', '.join(map(str, lengths))} steps) end unlogged,"
            " and the environments start new episodes"
        )
    elif not saved:
        notes.append(
            "this checkpoint predates saved log state: episodes in progress end unlogged, logging restarts here"
        )
    return start_line(
        f"train dreamer: variant {cfg.variant}, {cfg.env.name} ({cfg.env.modality}), run {run.path}",
        "env steps",
        cfg.train.steps,
        counters.env_steps if checkpoint is not None else None,
        resumed,
        logged_until,
        "collected anew",
        notes,
    )


def _write_openloop_video(
    agent: DreamerAgent, replay: Replay, rng: np.random.Generator, run: RunDir, step: int
) -> None:
    batch = agent.to_torch(replay.sample(min(4, agent.cfg.train.batch_size), rng))
    frames = openloop_images(agent.wm, batch).cpu().numpy()  # (B, T, S, 3S, 3)
    video = np.concatenate(list(frames), axis=1)  # sequences stacked vertically
    write_video(run.videos_dir / f"openloop-{step:09d}.mp4", video, fps=10)
