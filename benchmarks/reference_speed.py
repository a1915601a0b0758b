"""Side-by-side speed of wmlab's latent world model and the reference fork's code, same configuration, same CPU.

    pip install einops                      # the fork needs it; wmlab does not
    python benchmarks/reference_speed.py --reference /tmp/fork [--reference-commit SHA] [--threads 1]
        [--batches 8,64] [--samples 30,300] [--history 1] [--trials 3] [--only train|cem] [--out PATH]

The reference is the DINO-WM latent-action fork (github.com/pythonpedro99/dino_wm_latent_actions), checked out or
exported at --reference; nothing of it is copied here. Paper configuration: P = 196 DINOv2-S/14 tokens of E = 384,
predictor depth 6, 16 heads x 64, MLP 2048, dropout 0.1, A = 32, frameskip 5; the fork's values are read from its
conf/*.yaml and compared with wmlab's `paper` preset (mismatches are listed in the output).

Measured on random tensors (no DINOv2 on either side: the fork's encoder is replaced by a pass-through of the
same token tensors):
  train  one training step (forward, backward, every optimiser step) of `action`, `la-vq` and `la` at each batch;
         wmlab `train_step` at step 5000 (past the VQ warm-up) in fp32 and bf16, the fork's train-loop sequence
         (model(obs, act), zero_grad, backward, optimiser steps) in fp32 as written.
  cem    one plan with one CEM iteration, H = 5, N samples, 1 instance, `action` variant.
Two persistent worker processes, one per side, take turns trial by trial so that load drift hits both alike;
one untimed warm-up, then --trials timed trials, median reported. Predictor forward calls are counted during the
warm-up. Writes a JSON result atomically (default benchmarks/results/reference_speed_cpu.json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import types
from pathlib import Path

FORK_FILES = (
    "models/visual_world_model.py",
    "models/vit.py",
    "models/lam.py",
    "models/vq_ema.py",
    "models/proprio.py",
    "planning/cem.py",
    "planning/objectives.py",
    "conf/train.yaml",
)
TOKENS, TOKEN_DIM, MACRO = 196, 384, 10
STEP = 5000  # wmlab's global step: past the two-phase VQ warm-up (2000 + 1000), so the quantiser is fully on


def random_batch(batch: int, frames: int, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, frames, TOKENS, TOKEN_DIM, generator=g)
    return tokens, torch.randn(batch, frames, MACRO, generator=g)


def count_calls(module, counts: dict) -> None:
    """Wrap ``module.forward`` so that every call adds (rows, tokens per row) to counts["calls"]."""
    inner = module.forward

    def forward(x, *args, **kwargs):
        counts.setdefault("calls", []).append([int(x.shape[0]), int(x[0].numel() // x.shape[-1])])
        return inner(x, *args, **kwargs)

    module.forward = forward


# ---------------------------------------------------------------------------------------------------- wmlab side
class WmlabSide:
    def __init__(self):
        from wmlab.config import build_config
        from wmlab.latent.train import LatentConfig

        self.build = lambda overrides: build_config(LatentConfig, "latent", "paper", overrides=overrides)
        self.state = None

    def hello(self, _):
        from wmlab.planning import CEMConfig

        c, cem = self.build([]), CEMConfig()
        p, i, v, t = c.model.predictor, c.model.idm, c.model.vq, c.train
        return {
            "predictor": [p.depth, p.heads, p.head_dim, p.mlp_dim, p.dropout],
            "action_dim": c.model.action_dim,
            "macro_action": 2 * c.model.frameskip,
            "idm": [i.dim, i.depth, i.heads, i.head_dim, i.mlp_dim, i.dropout],
            "vq": [v.num_codes, v.commitment, v.decay],
            "lr": [t.lr_predictor, t.lr_action_encoder, t.lr_idm],
            "weight_decay": t.weight_decay,
            "cem": [cem.elites, cem.var_scale, "last"],
            "two_phase_vq_schedule": v.warmup > 0 or v.mix > 0,
        }

    def setup(self, msg):
        m = msg["measure"]
        import torch

        from wmlab.latent.train import make_optimizers, train_step
        from wmlab.latent.world_model import LatentWorldModel
        from wmlab.planning import BoxSpace, CEMConfig, goal_mse, make_planner

        self.state = None
        cfg = self.build([f"model.variant={m['variant']}", f"model.history={m['history']}", *m["overrides"]])
        model = LatentWorldModel(cfg.model, TOKENS, TOKEN_DIM)
        counts: dict = {}
        count_calls(model.predictor, counts)
        if m["kind"] == "train":
            model.train()
            optimizers = make_optimizers(model, cfg.train)
            tokens, actions = random_batch(m["batch"], m["history"] + 1)
            batch = {"tokens": tokens, "actions": actions}
            run = lambda precision: train_step(model, optimizers, batch, STEP, precision)  # noqa: E731
        else:
            model.eval()
            n = m["samples"]
            planner = make_planner(
                "cem", BoxSpace(MACRO), CEMConfig(samples=n, elites=min(m["elites"], n), iterations=1)
            )
            current, goal = random_batch(1, 2)[0].unbind(1)  # (1, P, E) each

            def cost(candidates):  # as wmlab.eval.planning.LatentGoalProblem.cost_function (action, fp32)
                batch, samples = candidates.shape[:2]
                start = current.repeat_interleave(samples, 0)
                rollout = model.rollout(start[:, None], model.action_encoder(candidates.flatten(0, 1)))
                return goal_mse(rollout.unflatten(0, (batch, samples)), goal, "last")

            run = lambda precision: planner.plan(cost, 1, m["horizon"], torch.Generator().manual_seed(0))  # noqa: E731
        run(m["precisions"][0])  # warm-up, and the call counts of one trial
        warm = {
            "predictor_calls": list(counts.pop("calls", [])),
            "parameters": sum(p.numel() for p in model.parameters()),
        }
        for precision in m["precisions"][1:]:
            run(precision)
            counts.clear()
        self.state = run
        return warm

    def trial(self, msg):
        start = time.perf_counter()
        self.state(msg["precision"])
        return {"seconds": time.perf_counter() - start}


# ------------------------------------------------------------------------------------------------ reference side
class ReferenceSide:
    """The fork's own classes and its own train-step / CEM code paths, imported from --reference."""

    def __init__(self, path: str):
        sys.path.insert(0, path)

        # torchvision has no CPU build here and psutil is not installed: the fork imports them at module level
        # (models/visual_world_model.py: `transforms` only for its DINO image resize; utils.py: psutil only in its
        # RAM-report helpers), and neither is on a measured path. Dummy modules let the imports succeed; any use fails.
        def unusable(*_, **__):
            raise RuntimeError("stubbed by reference_speed.py: this fork code path is not benchmarked")

        def attribute(name: str):
            if name.startswith("__"):  # keep inspect and pickling from mistaking the dummy for a real module
                raise AttributeError(name)
            return unusable

        for name, children in {"torchvision": ["transforms", "utils"], "psutil": []}.items():
            if name in sys.modules:
                continue
            module = types.ModuleType(name)
            module.__getattr__ = attribute  # type: ignore[method-assign]
            sys.modules[name] = module
            for child in children:
                sub = types.ModuleType(f"{name}.{child}")
                sub.__getattr__ = attribute  # type: ignore[method-assign]
                setattr(module, child, sub)
                sys.modules[f"{name}.{child}"] = sub
        from omegaconf import OmegaConf

        conf = Path(path) / "conf"
        train = OmegaConf.load(conf / "train.yaml")
        load = lambda name: OmegaConf.load(conf / name)  # noqa: E731
        # the planner files also interpolate a plan-time `latent_prior` block (unused for `action`): keep what we use
        keep = ["horizon", "topk", "num_samples", "var_scale", "objective"]
        composed = OmegaConf.create(
            {
                "model": train.model,
                "training": train.training,
                "dataset": train.dataset,
                "two_phase": train.two_phase,
                "predictor": load("predictor/vit.yaml"),
                "lam": load("latent_action_model/default.yaml"),
                "vq": load("vq_model/default.yaml"),
                "action_encoder": load("action_encoder/proprio.yaml"),
                "planner": OmegaConf.masked_copy(load("planner/cem.yaml"), keep),
                "plan": OmegaConf.masked_copy(load("plan_pusht.yaml"), keep),
            }
        )
        self.cfg = OmegaConf.to_container(composed, resolve=True)
        self.state = None

    def hello(self, _):
        import inspect

        from models.vit import ViTPredictor

        c = self.cfg
        p, lam, vq, t = c["predictor"], c["lam"], c["vq"], c["training"]
        dim = TOKEN_DIM  # the LAM's model_dim is the encoder's width
        return {
            "predictor": [
                p["depth"],
                p["heads"],
                inspect.signature(ViTPredictor).parameters["dim_head"].default,
                p["mlp_dim"],
                p["dropout"],
            ],
            "action_dim": c["model"]["action_emb_dim"],
            "macro_action": 2 * c["dataset"]["frameskip"],
            "idm": [dim, lam["enc_blocks"], lam["num_heads"], dim // lam["num_heads"], 4 * dim, lam["dropout"]],
            "vq": [vq["num_codes"], vq["commitment"], vq["ema_decay"]],
            "lr": [t["predictor_lr"], t["action_encoder_lr"], t["latent_lr"]],
            "weight_decay": 0.01,  # torch.optim.AdamW's default: the fork passes none
            "cem": [c["planner"]["topk"], c["planner"]["var_scale"], c["plan"]["objective"]["mode"]],
            "tokens": (c["dataset"]["img_size"] // 16) ** 2,
            "embedding_dropout": p["emb_dropout"],
            "two_phase_vq_schedule": bool(c["two_phase"]["enabled"]),
        }

    def build(self, m, counts):
        import torch
        from models.lam import LatentActionModel
        from models.proprio import ProprioceptiveEmbedding
        from models.visual_world_model import VWorldModel
        from models.vit import ViTPredictor
        from models.vq_ema import VectorQuantizerEMA
        from torch import nn

        c, variant, train = self.cfg, m["variant"], m["kind"] == "train"
        action, vq = variant == "action", variant == "la-vq"
        strip = lambda d: {k: v for k, v in d.items() if k != "_target_"}  # noqa: E731

        class PassThrough(nn.Module):
            """Stands in for DinoV2Encoder: the inputs already are patch tokens (B*T, P, E)."""

            name, emb_dim, patch_size, latent_ndim = "precomputed-tokens", TOKEN_DIM, 14, 2

            def forward(self, x):
                counts["encoder_images"] = counts.get("encoder_images", 0) + int(x.shape[0])
                return x

        cond = c["model"]["action_emb_dim"] if action else c["model"]["latent_action_dim"]
        predictor = ViTPredictor(
            **strip(c["predictor"]), num_patches=TOKENS, num_frames=m["history"], dim=TOKEN_DIM + cond
        )
        parts = {}
        if action:
            parts["action_encoder"] = ProprioceptiveEmbedding(
                **strip(c["action_encoder"]), in_chans=MACRO, emb_dim=c["model"]["action_emb_dim"]
            )
        else:
            parts["latent_action_model"] = LatentActionModel(
                **strip(c["lam"]), in_dim=TOKEN_DIM, model_dim=TOKEN_DIM, patch_size=14
            )
            if vq:
                parts["vq_model"] = VectorQuantizerEMA(**strip(c["vq"]))
            parts["latent_action_down"] = nn.Linear(TOKEN_DIM, cond)
        mc = c["model"]
        model = VWorldModel(
            image_size=c["dataset"]["img_size"],
            num_hist=m["history"] if train else 1,  # plan.py hard-codes 1
            num_pred=mc["num_pred"],
            encoder=PassThrough(),
            decoder=None,
            predictor=predictor,
            codebook_splits=mc["codebook_splits"],
            codebook_dim=mc["codebook_dim"],
            action_dim=MACRO,
            concat_dim=mc["concat_dim"],
            latent_action_dim=mc["latent_action_dim"],
            num_action_repeat=mc["num_action_repeat"],
            train_encoder=False,
            train_predictor=True,
            train_decoder=False,
            train_lam=not action,
            use_action_encoder=action,
            use_lam=not action,
            use_vq=vq,
            plan_action_type="raw",
            is_training=train,
            **parts,
        )
        count_calls(model.predictor, counts)
        return model, torch

    def setup(self, msg):
        m = msg["measure"]
        import itertools

        self.state = None
        counts: dict = {}
        model, torch = self.build(m, counts)
        t = self.cfg["training"]
        if m["kind"] == "train":
            # train.py init_optimizers: one AdamW per trained group, torch defaults besides the learning rate
            opts = [torch.optim.AdamW(model.predictor.parameters(), lr=t["predictor_lr"])]
            if m["variant"] == "action":  # the README's baseline command sets model.train_action_encoder=true
                opts.append(torch.optim.AdamW(model.action_encoder.parameters(), lr=t["action_encoder_lr"]))
            else:
                groups = [model.latent_action_model.parameters(), model.latent_action_down.parameters()]
                if model.vq_model is not None:
                    groups.append(model.vq_model.parameters())
                opts.append(torch.optim.AdamW(itertools.chain(*groups), lr=t["latent_lr"]))
            tokens, actions = random_batch(m["batch"], m["history"] + 1)
            obs = {"visual": tokens}

            def run():  # train.py Trainer.train, one iteration, without its data loading and logging
                model.train()
                model.encoder.eval()
                model.two_phase_enabled, model.two_phase_alpha = False, None  # two_phase.enabled: false
                loss = model(obs, actions)[3]
                for o in opts:
                    o.zero_grad()
                loss.backward()  # accelerator.backward on one CPU process without mixed precision
                for o in opts:
                    o.step()
        else:
            from planning.cem import CEMPlanner
            from planning.objectives import create_objective_fn

            model.eval()
            objective = self.cfg["plan"]["objective"]
            preprocessor = types.SimpleNamespace(transform_obs=lambda obs: dict(obs))  # tokens need no transform
            wandb = types.SimpleNamespace(log=lambda *a, **k: None)
            planner = CEMPlanner(
                horizon=m["horizon"],
                topk=min(m["elites"], m["samples"]),
                num_samples=m["samples"],
                var_scale=self.cfg["planner"]["var_scale"],
                opt_steps=1,
                eval_every=1,
                wm=model,
                action_dim=MACRO,
                objective_fn=create_objective_fn(objective["alpha"], objective["base"], objective["mode"]),
                preprocessor=preprocessor,
                evaluator=None,
                wandb_run=wandb,
                plan_action_type="raw",
            )
            current, goal = random_batch(1, 2)[0].unbind(1)
            obs_0, obs_g = {"visual": current[:, None]}, {"visual": goal[:, None]}

            def run():
                torch.manual_seed(0)
                planner.plan(obs_0, obs_g)

        run()
        warm = {
            "predictor_calls": counts.pop("calls", []),
            "encoder_images": counts.pop("encoder_images", 0),
            "parameters": sum(p.numel() for p in model.parameters()),
        }
        counts.clear()
        self.state = run
        return warm

    def trial(self, _):
        start = time.perf_counter()
        self.state()
        return {"seconds": time.perf_counter() - start}


def worker(side: str, reference: str, threads: int) -> None:
    """Answer JSON requests on stdin; replies go to the original stdout, everything printed goes to stderr."""
    import torch

    torch.set_num_threads(threads)
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the fork prints while building its models
    sys.stdout = sys.stderr
    handler = WmlabSide() if side == "wmlab" else ReferenceSide(reference)
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            if msg["op"] == "quit":
                return
            out = getattr(handler, msg["op"])(msg)
            if msg["op"] == "hello":
                out = {"config": out, "torch": torch.__version__, "threads": torch.get_num_threads()}
        except Exception:  # the parent prints it and stops both workers
            out = {"error": traceback.format_exc()}
        reply.write(json.dumps(out) + "\n")


# --------------------------------------------------------------------------------------------------- the parent
class Worker:
    def __init__(self, side: str, args, log: Path):
        env = {**os.environ, **{k: str(args.threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
        self.side, self.log = side, log
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", side, "--reference", args.reference, "--threads", str(args.threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
            env=env,
        )

    def ask(self, op: str, **fields) -> dict:
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        out = json.loads(line) if line else {"error": f"worker exited; its log:\n{self.log.read_text()[-3000:]}"}
        if "error" in out:
            raise SystemExit(f"{self.side} worker failed on {op}:\n{out['error']}")
        return out

    def close(self) -> None:
        if self.proc.poll() is None and not self.proc.stdin.closed:
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)


def check_reference(path: str) -> str | None:
    if not Path(path).is_dir():
        return f"--reference {path}: no such folder (export the fork there: git archive HEAD | tar -x -C {path})"
    missing = [f for f in FORK_FILES if not (Path(path) / f).is_file()]
    if missing:
        return f"--reference {path} is not the dino_wm_latent_actions fork: missing {', '.join(missing)}"
    import importlib.util

    if importlib.util.find_spec("einops") is None:
        return "the fork needs einops: pip install einops"
    return None


def fork_commit(path: str) -> str:
    """HEAD of --reference when it is itself a git checkout (not a folder inside some other repository)."""
    git = lambda *a: subprocess.run(["git", "-C", path, *a], capture_output=True, text=True).stdout.strip()  # noqa: E731
    top = git("rev-parse", "--show-toplevel")
    return git("rev-parse", "HEAD") if top and Path(top).resolve() == Path(path).resolve() else "unknown"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def measures(args, ref_cfg: dict) -> list[dict]:
    vq = ref_cfg["vq"]  # wmlab's VQ set to the fork's final values and EMA rule, so the two quantisers match
    overrides = [
        f"model.vq.num_codes={vq[0]}",
        f"model.vq.commitment={vq[1]}",
        f"model.vq.decay={vq[2]}",
        "model.vq.rule=reference",
    ]
    out = []
    if args.only in (None, "train"):
        for variant in ("action", "la-vq", "la"):
            for b in sorted(int(x) for x in args.batches.split(",")):
                out.append(
                    {
                        "kind": "train",
                        "variant": variant,
                        "batch": b,
                        "history": args.history,
                        "overrides": overrides,
                        "precisions": ["fp32", "bf16"],
                    }
                )
    if args.only in (None, "cem"):
        for n in sorted(int(x) for x in args.samples.split(",")):
            out.append(
                {
                    "kind": "cem",
                    "variant": "action",
                    "samples": n,
                    "horizon": 5,
                    "elites": ref_cfg["cem"][0],
                    "history": args.history,
                    "overrides": overrides,
                    "precisions": ["fp32"],
                }
            )
    return out


def run(args) -> None:
    error = check_reference(args.reference)
    if error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2)
    commit = args.reference_commit or fork_commit(args.reference)
    logs = Path(tempfile.mkdtemp(prefix="reference_speed_"))
    load_before = os.getloadavg()
    sides = {s: Worker(s, args, logs / f"{s}.log") for s in ("wmlab", "reference")}
    try:
        hello = {s: w.ask("hello") for s, w in sides.items()}
        cfgs = {s: h["config"] for s, h in hello.items()}
        mismatches = [
            f"{k}: wmlab paper preset {cfgs['wmlab'].get(k)} vs fork {cfgs['reference'][k]}"
            + (" (wmlab set to the fork's values and EMA rule here)" if k == "vq" else "")
            for k in cfgs["reference"]
            if k in cfgs["wmlab"] and cfgs["wmlab"][k] != cfgs["reference"][k]
        ]
        rows, skipped, failed, first_median = [], [], [], {}
        for m in measures(args, cfgs["reference"]):
            label = (
                f"train {m['variant']} B{m['batch']}"
                if m["kind"] == "train"
                else f"cem action N{m['samples']} H{m['horizon']}"
            ) + f" h{m['history']}"
            base = first_median.get((m["kind"], m["variant"]))
            if m["kind"] == "train" and base and base[1] * m["batch"] / base[0] > args.max_seconds:
                skipped.append(f"{label}: ~{base[1] * m['batch'] / base[0]:.0f} s per step expected (> --max-seconds)")
                print(f"skip {skipped[-1]}", flush=True)
                continue
            print(f"{label}: warm-up", flush=True)
            try:
                warm = {s: w.ask("setup", measure=m) for s, w in sides.items()}
            except (SystemExit, OSError) as error:  # e.g. a worker killed for memory: keep what was measured, stop here
                failed.append(f"{label}: {str(error)[-600:]}")
                print(f"failed {failed[-1]}", flush=True)
                break
            times: dict[str, list[float]] = {}
            for _ in range(args.trials):  # take turns: wmlab, reference, wmlab (bf16), ...
                for side, precision in [
                    ("wmlab", m["precisions"][0]),
                    ("reference", "fp32"),
                    *[("wmlab", p) for p in m["precisions"][1:]],
                ]:
                    key = "reference" if side == "reference" else f"wmlab_{precision}"
                    times.setdefault(key, []).append(sides[side].ask("trial", precision=precision)["seconds"])
            ref = statistics.median(times["reference"])
            for precision in m["precisions"]:
                mine = statistics.median(times[f"wmlab_{precision}"])
                rows.append(
                    {
                        "measure": f"{label} {precision}",
                        **{k: v for k, v in m.items() if k not in ("overrides", "precisions")},
                        "precision": precision,
                        "unit": "s/step" if m["kind"] == "train" else "s/plan (1 iteration)",
                        "wmlab_s": mine,
                        "reference_s": ref,
                        "ratio": mine / ref,
                        "wmlab_trials": times[f"wmlab_{precision}"],
                        "reference_trials": times["reference"],
                        "predictor_calls": {
                            "wmlab": warm["wmlab"]["predictor_calls"],
                            "reference": warm["reference"]["predictor_calls"],
                        },
                        "reference_encoder_images": warm["reference"]["encoder_images"],
                        "parameters": {s: w["parameters"] for s, w in warm.items()},
                    }
                )
                print(
                    f"  {rows[-1]['measure']}: wmlab {mine:.3f} s, reference {ref:.3f} s, ratio {mine / ref:.2f}",
                    flush=True,
                )
            first_median.setdefault(
                (m["kind"], m["variant"]), (m.get("batch", 1), max(ref, statistics.median(times["wmlab_fp32"])))
            )
    finally:
        for w in sides.values():
            w.close()
    result = {
        "command": " ".join(["python", *sys.argv]),
        "reference": {"repository": "github.com/pythonpedro99/dino_wm_latent_actions", "commit": commit},
        "machine": {
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "torch": hello["wmlab"]["torch"],
            "threads": {s: h["threads"] for s, h in hello.items()},
        },
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "trials": args.trials,
        "step": STEP,
        "config": cfgs,
        "config_mismatches": mismatches,
        "rows": rows,
        "skipped": skipped,
        "failed": failed,
    }
    from wmlab.atomic import atomic_write_text

    atomic_write_text(Path(args.out), json.dumps(result, indent=1) + "\n")
    print(
        f"\nfork {commit}, {cpu_model()}, torch {result['machine']['torch']}, {args.threads} thread(s), "
        f"load {load_before[0]:.2f} -> {result['load_average_after'][0]:.2f}"
    )
    print(table(rows))
    for line in mismatches:
        print(f"config mismatch: {line}")
    for line in skipped:
        print(f"skipped: {line}")
    for line in failed:
        print(f"failed: {line}")
    print(f"wrote {args.out}")
    if failed:
        raise SystemExit(1)


def table(rows: list[dict]) -> str:
    lines = [
        "| measure | wmlab | reference | ratio (wmlab / reference) | predictor calls wmlab / reference |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        calls = f"{len(r['predictor_calls']['wmlab'])} / {len(r['predictor_calls']['reference'])}"
        lines.append(
            f"| {r['measure']} ({r['unit']}) | {r['wmlab_s']:.3f} | {r['reference_s']:.3f} | "
            f"{r['ratio']:.2f} | {calls} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="folder holding the fork's tree (models/, planning/, conf/)")
    parser.add_argument("--reference-commit", default=None, help="the fork commit measured (default: git rev-parse)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", default="8,64")
    parser.add_argument("--samples", default="30,300")
    parser.add_argument("--history", type=int, default=1)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--only", choices=["train", "cem"], default=None)
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=60.0,
        help="skip a larger batch whose step, extrapolated from the smallest, exceeds this",
    )
    parser.add_argument("--out", default="benchmarks/results/reference_speed_cpu.json")
    parser.add_argument("--worker", choices=["wmlab", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.reference, args.threads)
    else:
        run(args)


if __name__ == "__main__":
    main()
