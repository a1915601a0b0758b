"""Offline trajectory store: one zarr group per dataset, episodes flat and unpadded (spec/latent_actions.md §4.2).

Layout::

    images        (sum T, S, S, 3) uint8     chunked along time
    states        (sum T, 5) float32         [agent_x, agent_y, block_x, block_y, block_angle mod 2 pi]
    velocities    (sum T, 2) float32         agent velocity, px/s
    rel_actions   (sum T, 2) float32         relative action a_t (px), applied after observing o_t
    abs_actions   (sum T, 2) float32         PD target (px)
    episode_ends  (N,) int64                 cumulative lengths
    split         (N,) int8                  0 train, 1 val
    attrs         env parameters, origin, statistics, and ``complete: true`` written last

Writers append whole episodes; ``episode_ends`` grows only after an episode's arrays are written, so an interrupted
writer leaves at most a tail that :meth:`EpisodeStore.resume` cuts off. A store without ``complete`` is refused by
:meth:`EpisodeStore.open`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wmlab.errors import WmlabError

SPLITS = ("train", "val")
VECTOR_FIELDS = {"states": 5, "velocities": 2, "rel_actions": 2, "abs_actions": 2}
FIELDS = ("images", *VECTOR_FIELDS)
IMAGE_CHUNK = 64  # frames per chunk: an episode of ~125 steps is read in about two chunks


def _zarr():
    import zarr

    return zarr


class EpisodeStore:
    """A dataset of episodes. Open existing stores with :meth:`open`; write new ones with :meth:`create`."""

    def __init__(self, path: str | Path, group: Any):
        self.path = Path(path)
        self.group = group

    # -- creation and validation ------------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, image_size: int, attrs: Mapping[str, Any]) -> EpisodeStore:
        """A new, empty, incomplete store. Refuses to overwrite an existing one."""
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            raise WmlabError(f"{path} already exists; choose another --out or delete it to start over")
        group = _zarr().open_group(str(path), mode="w")
        group.create_array(
            "images",
            shape=(0, image_size, image_size, 3),
            dtype="uint8",
            chunks=(IMAGE_CHUNK, image_size, image_size, 3),
        )
        for name, dim in VECTOR_FIELDS.items():
            group.create_array(name, shape=(0, dim), dtype="float32", chunks=(4096, dim))
        group.create_array("episode_ends", shape=(0,), dtype="int64", chunks=(4096,))
        group.create_array("split", shape=(0,), dtype="int8", chunks=(4096,))
        group.attrs.update({**dict(attrs), "image_size": image_size, "complete": False})
        return cls(path, group)

    @classmethod
    def open(cls, path: str | Path, writable: bool = False) -> EpisodeStore:
        """Open a complete store; incomplete or inconsistent stores are refused with the way to fix them."""
        store = cls._open(path, writable)
        if not store.group.attrs.get("complete", False):
            raise WmlabError(
                f"{path} is an incomplete dataset (its writer was interrupted); re-run the same "
                "collect / import command to resume it, or delete the folder"
            )
        store.validate()
        return store

    @classmethod
    def resume(cls, path: str | Path) -> EpisodeStore:
        """Reopen an incomplete store for appending, cutting any partly written episode."""
        store = cls._open(path, writable=True)
        if store.group.attrs.get("complete", False):
            raise WmlabError(f"{path} is already complete")
        total = int(store.episode_ends[-1]) if store.num_episodes else 0
        for name in FIELDS:
            array = store.group[name]
            if array.shape[0] != total:
                array.resize((total, *array.shape[1:]))
        return store

    @classmethod
    def _open(cls, path: str | Path, writable: bool) -> EpisodeStore:
        path = Path(path)
        if not (path / "zarr.json").exists():
            raise WmlabError(
                f"no dataset at {path}; create one with `wmlab collect pusht --out {path}` or "
                "`wmlab data import-dinowm SRC --out PATH`"
            )
        try:
            group = _zarr().open_group(str(path), mode="r+" if writable else "r")
            missing = [name for name in (*FIELDS, "episode_ends", "split") if name not in group]
        except Exception as e:  # noqa: BLE001 - zarr raises many types for damaged metadata
            raise WmlabError(f"{path} is not a readable dataset ({type(e).__name__}: {e})") from None
        if missing:
            raise WmlabError(f"{path} is damaged: missing arrays {missing}; re-create the dataset")
        return cls(path, group)

    def validate(self) -> None:
        ends = self.episode_ends
        total = int(ends[-1]) if len(ends) else 0
        problems = [
            f"{name} has {self.group[name].shape[0]} rows, episodes need {total}"
            for name in FIELDS
            if self.group[name].shape[0] != total
        ]
        if self.group["split"].shape[0] != len(ends):
            problems.append(f"split has {self.group['split'].shape[0]} entries for {len(ends)} episodes")
        if len(ends) and (np.diff(np.concatenate([[0], ends])) <= 0).any():
            problems.append("episode_ends is not strictly increasing")
        if problems:
            raise WmlabError(f"{self.path} is inconsistent: {'; '.join(problems)}; re-create the dataset")

    # -- writing ----------------------------------------------------------------------------------------------------
    def append_episode(self, episode: Mapping[str, np.ndarray], split: str) -> None:
        """Append one episode: ``images`` (T, S, S, 3) uint8 and the vector fields (T, D)."""
        if split not in SPLITS:
            raise WmlabError(f"split must be one of {SPLITS}, got {split!r}")
        length = len(episode["images"])
        if length == 0 or any(len(episode[name]) != length for name in VECTOR_FIELDS):
            raise WmlabError(f"an episode needs equal, non-zero lengths for {FIELDS}")
        for name in FIELDS:
            data = np.asarray(episode[name], dtype=self.group[name].dtype)
            self.group[name].append(data, axis=0)
        total = (int(self.episode_ends[-1]) if self.num_episodes else 0) + length
        self.group["split"].append(np.array([SPLITS.index(split)], np.int8))
        self.group["episode_ends"].append(np.array([total], np.int64))  # last: marks the episode as written

    def finalize(self, extra_attrs: Mapping[str, Any] | None = None) -> None:
        """Compute the statistics of spec §4.6 over valid train steps and mark the store complete."""
        self.validate()
        self.group.attrs.update({**dict(extra_attrs or {}), "statistics": self.compute_statistics()})
        self.group.attrs["complete"] = True  # written last

    def compute_statistics(self) -> dict[str, Any]:
        train = self.episode_indices("train")
        rows = np.concatenate([np.arange(*self.bounds(i)) for i in train]) if len(train) else np.zeros(0, int)
        actions = self.group["rel_actions"][:][rows] / 100.0
        states = self.group["states"][:][rows]
        return {
            "action_mean": actions.mean(0).tolist(),
            "action_std": actions.std(0).tolist(),
            "state_mean": states.mean(0).tolist(),
            "state_std": states.std(0).tolist(),
            "computed_over": "valid steps of the train split",
            "train_steps": int(len(rows)),
        }

    # -- reading ----------------------------------------------------------------------------------------------------
    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    @property
    def episode_ends(self) -> np.ndarray:
        return np.asarray(self.group["episode_ends"][:])

    @property
    def num_episodes(self) -> int:
        return int(self.group["episode_ends"].shape[0])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(np.concatenate([[0], self.episode_ends]))

    @property
    def image_size(self) -> int:
        return int(self.group.attrs["image_size"])

    @property
    def splits(self) -> np.ndarray:
        """(N,) split names."""
        return np.array(SPLITS)[np.asarray(self.group["split"][:])]

    def episode_indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.splits == split)

    def bounds(self, episode: int) -> tuple[int, int]:
        """Row range [start, end) of an episode in the flat arrays."""
        ends = self.episode_ends
        return (int(ends[episode - 1]) if episode else 0), int(ends[episode])

    def episode(self, index: int, fields: tuple[str, ...] = FIELDS) -> dict[str, np.ndarray]:
        """Arrays of one episode, each (T, ...)."""
        if not 0 <= index < self.num_episodes:
            raise WmlabError(f"episode {index} does not exist; the dataset has {self.num_episodes}")
        start, end = self.bounds(index)
        return {name: np.asarray(self.group[name][start:end]) for name in fields}
