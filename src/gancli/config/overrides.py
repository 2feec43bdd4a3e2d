"""Changing a config: named overrides, `--set section.field=value` assignments and `--config` TOML files, each
parsed by the field's declared type and validated; and the differences between two configs, in words."""

from __future__ import annotations

import dataclasses
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Callable

from gancli.config.schema import MOVED, RunConfig, declared_type, value_problem
from gancli.errors import GancliError

def with_overrides(config: RunConfig, **overrides: Any) -> RunConfig:
    """Apply CLI overrides (None means 'keep the preset's value'); dotted names reach nested configs."""
    top, nested = {}, {}
    for key, value in overrides.items():
        if value is None:
            continue
        key = _current_name(key)
        if "." in key:
            section, name = key.split(".", 1)
            nested.setdefault(section, {})[name] = value
        else:
            top[key] = value
    for section, values in nested.items():
        top[section] = replace(getattr(config, section), **values)
    return replace(config, **top).validate()


def changed_fields(a: RunConfig, b: RunConfig, ignore: tuple[str, ...] = ()) -> list[tuple[str, Any, Any]]:
    """(dotted name, value in a, value in b) of every field that differs between two configs."""
    out = []

    def walk(x, y, prefix):
        for f in fields(x):
            name = prefix + f.name
            if name in ignore:
                continue
            vx, vy = getattr(x, f.name), getattr(y, f.name)
            if dataclasses.is_dataclass(vx):
                walk(vx, vy, name + ".")
            elif vx != vy:
                out.append((name, vx, vy))

    walk(a, b, "")
    return out


def differences(a: RunConfig, b: RunConfig, ignore: tuple[str, ...] = ("epochs",)) -> list[str]:
    """The fields where an asked config (a) differs from a checkpoint's (b), in words."""
    return [f"{name} ({vb!r} in the checkpoint, {va!r} asked)" for name, va, vb in changed_fields(a, b, ignore)]


def _parse_value(text: str, current: Any, name: str):
    """A --set value parsed as the type of the field's current value (ints, floats, bools, strings, tuples)."""
    text = text.strip()
    try:
        if isinstance(current, bool):
            if text.lower() in ("true", "yes", "on", "1"):
                return True
            if text.lower() in ("false", "no", "off", "0"):
                return False
            raise ValueError
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, tuple):
            items = [t for t in text.replace("(", "").replace(")", "").split(",") if t.strip()]
            kind = type(current[0]) if current else int
            return tuple(kind(t.strip()) for t in items)
    except ValueError:
        raise GancliError(f"--set {name}={text}: expected {_kind(current)}") from None
    return text


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, tuple):
        return "a comma-separated list of " + ("numbers" if value and isinstance(value[0], float) else "whole numbers")
    return {int: "a whole number", float: "a number"}.get(type(value), "text")


def settings(config: RunConfig, assignments: list[str]) -> dict[str, Any]:
    """--set section.field=value assignments as typed overrides for with_overrides."""
    out = {}
    for text in assignments:
        name, sep, value = text.partition("=")
        name = name.strip()
        if not sep or not name:
            raise GancliError(f"--set {text!r}: write it as section.field=value, e.g. discriminator.minibatch=100,5")
        name = _current_name(name)
        out[name] = _parse_value(value, _field_value(config, name, f"--set {name}"), name)
    return out


def _current_name(name: str) -> str:
    """Today's name of a dotted field that moved into a model family's section (schema.MOVED)."""
    return dict(MOVED).get(name, name)


def _field_value(config: RunConfig, name: str, where: str) -> Any:
    """The current value of a dotted config field, or GancliError, starting with where (the --set or --config
    file it was named in), listing the fields there are."""
    node: Any = config
    for part in name.split("."):
        if not dataclasses.is_dataclass(node) or part not in {f.name for f in fields(node)}:
            known = ", ".join(f.name for f in fields(node)) if dataclasses.is_dataclass(node) else ""
            raise GancliError(f"{where}: no such config field" + (f" (there: {known})" if known else ""))
        node = getattr(node, part)
    if dataclasses.is_dataclass(node):
        raise GancliError(f"{where}: a section, not a field; set one of its fields, e.g. {name}.{fields(node)[0].name}")
    return node


def from_toml(path: Path, base: RunConfig) -> dict[str, Any]:
    """A TOML config file as overrides of base: top-level fields, and [generator], [discriminator], [optimizer],
    [ssl_mlp], [augment]."""
    import tomllib

    try:
        table = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise GancliError(f"--config {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GancliError(f"--config {path} cannot be read ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise GancliError(f"--config {path} is not valid TOML ({e})") from None
    out = {}
    for key, value in table.items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in items:
            name = _current_name(key if sub is None else f"{key}.{sub}")
            current = _field_value(base, name, f"--config {path}: {name}")
            out[name] = tuple(v) if isinstance(v, list) else v
            if type(out[name]) is not type(current) and not (isinstance(current, float) and isinstance(v, int)):
                raise GancliError(f"--config {path}: {name} must be {_kind(current)} (got {v!r})")
            problem = value_problem(name, out[name], declared_type(name))  # a list's elements too
            if problem:
                raise GancliError(f"--config {path}: {problem}")
    _check_ranges(path, base, out)
    return out


def _check_ranges(path: Path, base: RunConfig, out: dict[str, Any]) -> None:
    """GancliError naming the file and the key when the file's values fail validate: its messages name the
    command-line option (--k, --lr), which a reader of a --config error would look for on the command line."""
    file_blamed(path, out, lambda o: with_overrides(base, **o))


def file_blamed(path: Path, from_file: dict[str, Any], build: Callable[[dict[str, Any]], Any],
                above: dict[str, Any] | None = None) -> Any:
    """build(overrides) of the --config file's keys (from_file) under the layers above it (above: --set and the
    named options, which win over the file); a GancliError it raises is told as the file's, naming the file and
    the key, when a key the file set causes it: a check past validate (the model registry's, say) would
    otherwise report a file's setting as if it had been given on the command line."""
    above = above or {}
    own = {k: v for k, v in from_file.items() if k not in above}  # the file's keys still in effect
    try:
        return build({**own, **above})
    except GancliError as e:
        error = e
    message = str(error)
    try:
        build(above)
    except GancliError as without:
        if str(without) == message:  # the same without the file: not the file's doing
            raise error from None
    for name, value in own.items():  # the key that fails on its own with the same message is the one to name
        try:
            build({**above, name: value})
        except GancliError as alone:
            if str(alone) == message:
                raise GancliError(f"--config {path}: {name} = {_toml(value)}: {message}") from None
    keys = ", ".join(own)
    raise GancliError(f"--config {path}: its keys {keys} together: {message}") from None


def named_in_file(error: GancliError, path: Path, from_file: dict[str, Any], above: dict[str, Any]) -> GancliError:
    """error, told as the --config file's when the field it names (GancliError.fields, for the checks that need
    the data, past the config) is one the file set and nothing above it changed."""
    for name in getattr(error, "fields", ()):
        if name in from_file and name not in above:
            return GancliError(f"--config {path}: {name} = {_toml(from_file[name])}: {error}")
    return error


def _toml(value: Any) -> str:
    """A value as the TOML file wrote it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)
