"""t-SNE maps of a context recording (spec/dali.md §10.3), one PNG per GT feature, coloured by its raw value.

Panels: o_t (state runs) or e_t (pixel runs); posterior [h_t, z_t]; [h_t, z_t] + a_t; a_t; prior [h_t, z^_t];
prior + a_t; and for DALI c_t + a_t and prior + a_t + c_t. Points: the steps of one held-out episode (index 1) per
context, a seeded 50% subsample, capped at ``max_points``; perplexity 30 (lower for tiny sets); each context is
labelled with its raw values at the median of its points.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wmlab.analysis.context_recording import Recording
from wmlab.analysis.plots import pyplot, save_figure


def tsne_panels(rec: Recording) -> dict[str, np.ndarray]:
    """The representations of the maps, each (N, D_panel) over all steps of ``rec``."""
    action = rec.steps["action"].astype(np.float32)
    post, prior = rec.latent("posterior"), rec.latent("prior")
    first = ("o_t", rec.steps["state"]) if rec.meta["modality"] == "state" else ("e_t", rec.steps["embed"])
    panels = {
        first[0]: first[1].astype(np.float32),
        "[h, z]": post,
        "[h, z] + a": np.concatenate([post, action], -1),
        "a": action,
        "prior [h, z^]": prior,
        "prior + a": np.concatenate([prior, action], -1),
    }
    if rec.meta["context_kind"] == "inferred":
        context = rec.steps["context"].astype(np.float32)
        panels["c + a"] = np.concatenate([context, action], -1)
        panels["prior + a + c"] = np.concatenate([prior, action, context], -1)
    return panels


def tsne_points(rec: Recording, seed: int = 0, fraction: float = 0.5, max_points: int = 3000) -> np.ndarray:
    """Row indices of the mapped steps: episode 1 of every context (0 if only one was recorded), subsampled."""
    rng = np.random.default_rng(seed)
    episode = min(1, rec.meta["episodes"] - 1)
    rows = []
    for context_id in np.unique(rec.steps["context_id"]):
        candidates = np.flatnonzero(
            (rec.steps["context_id"] == context_id) & (rec.steps["episode_in_context"] == episode)
        )
        keep = max(1, int(round(fraction * len(candidates))))
        rows.append(np.sort(rng.choice(candidates, keep, replace=False)))
    rows = np.concatenate(rows)
    if len(rows) > max_points:
        rows = np.sort(rng.choice(rows, max_points, replace=False))
    return rows


def embed_2d(x: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE of x (N, D) with a fixed seed; perplexity is lowered below N / 3 for small sets. Returns (N, 2)."""
    from sklearn.manifold import TSNE

    n = len(x)
    if x.shape[1] < 2:  # the PCA initialisation needs two columns (one-dimensional actions)
        x = np.pad(x, ((0, 0), (0, 2 - x.shape[1])))
    if n < 4:
        return x[:, :2].astype(np.float64)
    perplexity = float(min(perplexity, max(1.0, (n - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed)
    return tsne.fit_transform(x.astype(np.float64))


def tsne_maps(
    rec: Recording, out: str | Path, seed: int = 0, fraction: float = 0.5, max_points: int = 3000
) -> list[Path]:
    """Compute every panel's map once and draw one figure per GT feature: ``out/tsne_<feature>.png``."""
    plt = pyplot()
    rows = tsne_points(rec, seed, fraction, max_points)
    maps = {name: embed_2d(x[rows], seed) for name, x in tsne_panels(rec).items()}
    context_id = rec.steps["context_id"][rows]
    names = rec.meta["feature_names"]
    out = Path(out)
    paths = []
    for feature in names:
        raw = np.array([rec.contexts[c][feature] for c in context_id])
        cols = 4
        nrows = -(-len(maps) // cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.6 * nrows), squeeze=False)
        for ax, (name, xy) in zip(axes.flat, maps.items()):
            points = ax.scatter(xy[:, 0], xy[:, 1], c=raw, cmap="viridis", s=6)
            for c in np.unique(context_id):
                centre = np.median(xy[context_id == c], 0)
                label = ", ".join(f"{rec.contexts[c][n]:.2f}" for n in names)
                ax.annotate(label, centre, fontsize=7, ha="center", bbox={"fc": "white", "alpha": 0.6, "lw": 0})
            ax.set_title(name)
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in list(axes.flat)[len(maps) :]:
            ax.axis("off")
        fig.colorbar(points, ax=axes.ravel().tolist(), label=feature, shrink=0.8)
        fig.suptitle(
            f"{rec.meta['env']} {rec.meta['variant']}: t-SNE coloured by {feature} (labels: {', '.join(names)})"
        )
        paths.append(save_figure(fig, out / f"tsne_{feature}.png", dpi=100))
    return paths
