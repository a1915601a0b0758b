"""Typed dataclass configs, YAML presets shipped inside the package, and ``a.b=c`` overrides.

A config is a (nested) dataclass; every field is documented where it is defined. A preset is a YAML file of
partial values under ``wmlab/presets/<group>/<name>.yaml``; a preset may name another as ``base:`` and is applied over
it (configs are data, composed in order). Overrides from the command line come last:

    cfg = build_config(DreamerConfig, "dreamer", preset="tiny", overrides=["model.deter=256", "env.name=walker"])

Unknown keys and wrongly typed values raise :class:`WmlabError` naming the valid keys and the nearest one.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from wmlab.atomic import atomic_write_text
from wmlab.errors import WmlabError, nearest

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked against the annotation ``tp`` (ints are accepted where floats are expected)."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except WmlabError:
                continue
        raise WmlabError(f"config key {key!r} expects {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise WmlabError(f"config key {key!r} must be one of {', '.join(map(repr, args))}; got {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise WmlabError(f"config key {key!r} is a section ({tp.__name__}); give it a mapping, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise WmlabError(f"config key {key!r} expects a list, got {value!r}")
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise WmlabError(f"config key {key!r} expects a mapping, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # YAML 1.1 reads 3e-5 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (str, bool) and isinstance(value, tp):
        return value
    raise WmlabError(f"config key {key!r} expects {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _fields(cls: type) -> dict[str, Any]:
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _unknown_key(key: str, valid: Sequence[str]) -> WmlabError:
    hint = nearest(key.rsplit(".", 1)[-1], valid)
    msg = f"unknown config key {key!r}; valid keys here: {', '.join(sorted(valid))}"
    return WmlabError(msg + (f" (did you mean {hint!r}?)" if hint else ""))


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a (partial) mapping; missing fields keep their defaults."""
    fields = _fields(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise _unknown_key(prefix + key, list(fields))
        kwargs[key] = _coerce(value, fields[key], prefix + key)
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field without default was not given
        raise WmlabError(f"incomplete config for {prefix or cls.__name__}: {e}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML-safe nested dict of a dataclass config (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(config)


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: sections merge, everything else in ``update`` replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["a.b=3", "c=[1, 2]"]`` -> ``{"a": {"b": 3}, "c": [1, 2]}``; values are parsed as YAML."""
    tree: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise WmlabError(f"override {item!r} must look like key=value (for example model.deter=256)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise WmlabError(f"override {item!r} conflicts with an earlier override of {part!r}")
        node[parts[-1]] = value
    return tree


def _preset_folder(group: str, root: Path | None) -> Any:
    return (Path(root) if root is not None else resources.files("wmlab") / "presets") / group


def preset_names(group: str, root: Path | None = None) -> list[str]:
    """Names of the presets of ``group`` (``dreamer``, ``latent``, ...), shipped in the package unless ``root``."""
    folder = _preset_folder(group, root)
    if not folder.is_dir():
        return []
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_preset(group: str, name: str, root: Path | None = None, _chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """The values of preset ``group/name``, with its ``base:`` chain applied first."""
    if name in _chain:
        raise WmlabError(f"{group} presets form a base cycle: {' -> '.join(_chain + (name,))}")
    names = preset_names(group, root)
    if name not in names:
        hint = nearest(name, names)
        raise WmlabError(
            f"unknown {group} preset {name!r}; valid: {', '.join(names) or '(none)'}"
            + (f" (did you mean {hint!r}?)" if hint else "")
        )
    data = yaml.safe_load((_preset_folder(group, root) / f"{name}.yaml").read_text()) or {}
    base = data.pop("base", None)
    return merge(load_preset(group, base, root, _chain + (name,)), data) if base else data


def build_config(
    cls: type[T],
    group: str | None = None,
    preset: str | None = None,
    overrides: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
    preset_root: Path | None = None,
) -> T:
    """Dataclass defaults <- preset ``group/preset`` <- ``extra`` (e.g. CLI options) <- ``a.b=c`` overrides."""
    data: dict[str, Any] = load_preset(group, preset, preset_root) if preset else {}
    data = merge(data, extra or {})
    data = merge(data, parse_overrides(overrides))
    return from_dict(cls, data)


def save_config(config: Any, path: str | Path) -> None:
    """Write ``config`` as YAML, atomically."""
    atomic_write_text(Path(path), yaml.safe_dump(to_dict(config), sort_keys=False))


def load_config(cls: type[T], path: str | Path) -> T:
    """Read a config written by :func:`save_config`; unknown keys or wrong types are errors."""
    path = Path(path)
    if not path.exists():
        raise WmlabError(f"no config at {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise WmlabError(f"{path} is not valid YAML ({reason}); restore it, or start a new run elsewhere") from None
    if not isinstance(data, Mapping):
        raise WmlabError(f"{path} is not a wmlab config (a YAML mapping); restore it, or start a new run elsewhere")
    return from_dict(cls, data)


def diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configs (or plain dicts)."""
    da = a if isinstance(a, Mapping) else to_dict(a)
    db = b if isinstance(b, Mapping) else to_dict(b)
    keys = []
    for key in sorted(set(da) | set(db)):
        va, vb = da.get(key), db.get(key)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            keys += diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            keys.append(prefix + key)
    return keys
