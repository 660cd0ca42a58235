"""Configs as frozen dataclasses read from commented YAML (``yaml.safe_load``): the machinery
every branch's config shares (:mod:`hitrank.config`, :mod:`hitrank.descriptors.config`,
:mod:`hitrank.transfer.config`, the highlighter's training config).

Unknown keys and wrong types are :class:`~hitrank.errors.ConfigError` s that name the key and
the allowed values. ``--set key=value`` overrides any key (dotted path, value parsed as YAML:
``--set train.epochs=2``, ``--set pairs.w=[0.3,0.7]``). A config is a file or the name of a
config packaged with hitrank (``table1/a_simple_cnn_mid30``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

log = logging.getLogger(__name__)

MAX_SEED = 2**32 - 1  # the largest seed (numpy's legacy generators' limit; torch takes it too)
#: the configs shipped inside the package (configs/ at the top of the repository points here)
PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"


class Plain:
    """Mixin of the top-level config dataclasses: ``to_dict()`` as plain YAML/JSON types."""

    def to_dict(self) -> dict:
        return to_plain(dataclasses.asdict(self))


def without_late_defaults(d: dict, obj, keys) -> dict:
    """``d``, the dict of the dataclass ``obj``, without the ``keys`` (dotted paths into nested
    dataclasses: ``contrast``, ``train.contrast``) whose field holds its default. For fields
    added after something was keyed on the whole dict (a feature cache, a training state): the
    key stays what it was while the new field is unused. Changes and returns ``d``."""
    for key in keys:
        *path, name = key.split(".")
        owner, part = obj, d
        for section in path:
            owner, part = getattr(owner, section), part[section]
        if getattr(owner, name) == type(owner).__dataclass_fields__[name].default:
            del part[name]
    return d


def to_plain(obj):
    """Dataclass-as-dict values with tuples as lists (for YAML, JSON and checkpoints)."""
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


#: numbers PyYAML (YAML 1.1) leaves as text: an exponent without a dot, e.g. 1e-3, 5E4
_YAML11_EXPONENT = re.compile(r"[-+]?\d+[eE][-+]?\d+")


def _coerce(path: str, value: Any, default: Any):
    """Check/convert ``value`` to the type of the field's default."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{path}={value!r}: expected true or false")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}={value!r}: expected an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, str) and _YAML11_EXPONENT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as text; it is a number here
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}={value!r}: expected a number")
        if math.isnan(value):
            raise ConfigError(f"{path}={value!r}: expected a number, not NaN")
        return float(value)
    if isinstance(default, str):
        if isinstance(value, bool):  # YAML 1.1 reads on/off/yes/no as booleans
            return "on" if value else "off"
        if value is None:  # `key:` in YAML, `--set key=` on the command line
            if default == "":  # an optional string: empty clears it
                return ""
            raise ConfigError(f"{path} is empty; give a value, e.g. {path}={default}")
        if not isinstance(value, str):
            raise ConfigError(f"{path}={value!r}: expected a string")
        return value
    if isinstance(default, tuple):
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items:
            raise ConfigError(f"{path}: the grid is empty; give at least one value")
        item_default = default[0] if default else 0.0  # lists of strings keep strings
        return tuple(_coerce(f"{path}[{i}]", v, item_default) for i, v in enumerate(items))
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}={value!r}: expected a mapping")
        return value
    return value


def build_config(cls, data: dict, prefix: str = ""):
    """Build the frozen dataclass ``cls`` from a mapping (strict: unknown keys, bad types)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or "the config"
        raise ConfigError(f"{where}: expected a section of key: value lines ({', '.join(sorted(fields))}), "
                          f"got {data!r}")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {[prefix + k for k in unknown]}; "
                          f"allowed under {prefix.rstrip('.') or 'the top level'}: {sorted(fields)}")
    kwargs = {}
    defaults = cls()
    for name, value in data.items():
        default = getattr(defaults, name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = build_config(type(default), value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(prefix + name, value, default)
    return cls(**kwargs)


def check_choice(key, value, allowed):
    """ConfigError naming the key and the allowed values unless ``value`` is allowed."""
    if value not in allowed:
        raise ConfigError(f"{key}={value!r}; allowed: {list(allowed)}")


def check_seeds(**seeds: int) -> None:
    """ConfigError naming the key unless every seed (``key=value``, dots as ``__``) is an
    integer from 0 to :data:`MAX_SEED` (numpy's and torch's generators refuse negative seeds,
    torch's those of 64 bits and more)."""
    for key, value in seeds.items():
        if not 0 <= value <= MAX_SEED:
            raise ConfigError(f"{key.replace('__', '.')}={value}: a seed must be an integer from 0 to {MAX_SEED}")


def override_text(value) -> str:
    """``value`` as the YAML text of a ``--set key=VALUE`` item that reads back as that very
    string (a column named ``null``, ``yes``, ``2020`` or ``market #1`` stays that name)."""
    return json.dumps(str(value))


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"train.epochs=2"`` -> ``(["train", "epochs"], 2)``: the dotted key and the value
    parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.epochs=2")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from None
    return key.strip().split("."), value


def packaged_configs() -> list[str]:
    """Names of the configs shipped inside the package (``table1/a_simple_cnn_mid30``, ...)."""
    root = PACKAGED_CONFIGS
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))


def resolve_config(spec: str | os.PathLike) -> Path:
    """A config file: ``spec`` itself when it is a file, else the packaged config of that
    name (``table1/a_simple_cnn_mid30``, with or without ``.yaml``)."""
    path = Path(spec)
    if path.is_file():
        return path
    name = str(spec).removeprefix("configs/")
    for candidate in (PACKAGED_CONFIGS / name, PACKAGED_CONFIGS / f"{name}.yaml"):
        if candidate.is_file():  # before a folder of the same name here (runs/table1/a_... )
            return candidate
    if path.is_dir():
        raise ConfigError(f"{str(spec)!r} is a folder; give a config .yaml file or a packaged config name "
                          f"(e.g. {packaged_configs()[0]})")
    if path.exists():
        raise ConfigError(f"{str(spec)!r}: not a regular file (a pipe, socket or device?); "
                          "give a config .yaml file")
    raise ConfigError(f"{str(spec)!r}: config file does not exist and is not a packaged config; "
                      f"packaged: {', '.join(packaged_configs())}")


def read_yaml(path: str | os.PathLike | None, overrides: list[str] = ()) -> dict:
    """A YAML mapping (``safe_load``) with ``key=value`` overrides applied; not validated.

    ``path`` is a file or a packaged config name (see :func:`resolve_config`).
    """
    data: dict = {}
    if path is not None:
        path = resolve_config(path)
        data = load_mapping(path)
        data.setdefault("name", path.stem)
    return apply_overrides(data, overrides)


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (plain YAML keeps the
    last one silently, so a config could say one thing and do another)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: PyYAML merges those itself
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise ConfigError(f"a key that is a {type(key).__name__} (line {key_node.start_mark.line + 1}); "
                                  "keys are names")
            if key in seen:
                raise ConfigError(f"key {key!r} is given twice (line {key_node.start_mark.line + 1}); "
                                  "keep one")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_mapping(path: Path) -> dict:
    """The top-level mapping of the YAML file ``path`` (safe loading, no key given twice);
    ``{}``, with a warning, for an empty file.

    Raises
    ------
    ConfigError
        In one line naming the file: unreadable, not UTF-8 text, not valid YAML, a key given
        twice, or not a mapping at the top level.
    """
    try:
        text = path.read_bytes().decode("utf-8")
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except FileNotFoundError:
        raise ConfigError(f"{str(path)!r}: config file does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{str(path)!r}: cannot read the config ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{str(path)!r}: not UTF-8 text (byte {exc.start}); save the config as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{str(path)!r}: not valid YAML ({' '.join(str(exc).split())})") from None
    except ConfigError as exc:
        raise ConfigError(f"{str(path)!r}: {exc}") from None
    if data is None:
        log.warning("%r is empty: every setting takes its default", str(path))
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{str(path)!r}: expected a mapping (key: value lines) at the top level, "
                          f"found {type(data).__name__}")
    return data


def apply_overrides(data: dict, overrides: list[str] = ()) -> dict:
    """``data`` (a config mapping, changed in place and returned) with ``key=value`` items set."""
    for item in overrides:
        keys, value = parse_override(item)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {k!r} is not a section")
        node[keys[-1]] = value
    return data
