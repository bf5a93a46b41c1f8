"""The one way a command's options are built: one click option per field of its config
dataclass, type, default and allowed values taken from the field (`ascnet.config`), the help
from the command's HELP dict. A field that is itself a dataclass (`clip: ClipSpec`) gives one
option per field of it, under the inner name (`--clip-len`). Tuples are given comma-separated
(`--speeds 1,2,4`).

Every such command also takes `--config FILE` (JSON, or YAML with PyYAML installed): its keys
are the command's options (`clip_len` or `clip-len`; a dataclass field may also be given as a
mapping, `clip: {clip_len: 16}`, as a run's config.json has it), and the flags given on the
command line override them. The file fills click's default map, so a value from it is checked
and converted exactly as the same flag would be."""
from __future__ import annotations

import difflib
import json
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import get_args, get_origin

import click

from ascnet.config import choices, hints, literal_args


def _leaves(cls, skip=()) -> list[tuple[str, str | None, object, object, tuple | None]]:
    """(name, outer field or None, type, default, allowed values) of every option of `cls`."""
    out, types, allowed = [], hints(cls), choices(cls)
    for f in fields(cls):
        if f.name in skip:
            continue
        tp = types[f.name]
        if is_dataclass(tp):
            inner_types, inner_allowed = hints(tp), choices(tp)
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            out += [(g.name, f.name, inner_types[g.name], getattr(default, g.name), inner_allowed.get(g.name))
                    for g in fields(tp) if g.name not in skip]
        else:
            default = f.default if f.default is not MISSING else (
                f.default_factory() if f.default_factory is not MISSING else None)  # type: ignore[misc]
            out.append((f.name, None, tp, default, allowed.get(f.name)))
    return out


def config_options(cls, help: dict[str, str], *, skip=(), required=(), arguments=()):
    """Decorator: one option per field of `cls` (and of its dataclass fields) but `skip`;
    `required` ones have no default, `arguments` become positional."""

    def decorate(func):
        for name, _, tp, default, allowed in reversed(_leaves(cls, skip)):
            flag = "--" + name.replace("_", "-")
            if name in arguments:
                func = click.argument(name, type=click.Path() if tp is str else None)(func)
                continue
            kw = {"default": default, "show_default": default is not None, "help": help[name]}
            if name in required:
                kw = {"required": True, "help": help[name]}
            if allowed:
                kw["type"] = click.Choice([str(v) for v in allowed])
            elif tp is bool:
                flag = f"{flag}/--no-{name.replace('_', '-')}"
            elif get_origin(tp) is tuple:
                kw["default"] = ",".join(map(str, default))
                item = get_args(tp)[0]
                kw["metavar"] = ",".join(literal_args(item)) if literal_args(item) else "LIST"
            elif get_origin(tp) is None:  # int, float, str
                kw["type"] = tp
            else:  # optional values (int | None): click takes the default's type
                kw["type"] = next(a for a in get_args(tp) if a is not type(None))
            func = click.option(flag, name, **kw)(func)
        return config_file_option(func)

    return decorate


def changed_flags(cfg, *, skip=()) -> list[str]:
    """The command-line words that set `cfg`'s options where they differ from their defaults,
    spelt as `config_options` makes them (`--clip-len 16`, `--no-augment`, `--speeds 1,2,4`):
    with the command's name they run the same config again."""
    words = []
    for name, outer, tp, default, _ in _leaves(type(cfg), skip):
        value = getattr(getattr(cfg, outer) if outer else cfg, name)
        if value == default:
            continue
        flag = "--" + name.replace("_", "-")
        if tp is bool:
            words.append(flag if value else "--no-" + name.replace("_", "-"))
        else:
            words += [flag, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return words


def config_file_option(func):
    """Decorator: `--config FILE`, whose keys become the command's defaults (flags still win)."""
    return click.option("--config", "config_file", type=click.Path(dir_okay=False), expose_value=False, is_eager=True,
                        callback=_load_config_file, metavar="FILE",
                        help="JSON or YAML file of this command's options (keys as the options' names, e.g. clip_len); "
                             "flags given here override it. A run's config.json is one.")(func)


def read_config_file(path: str | Path) -> dict:
    """The mapping in a JSON or YAML config file; ValueError naming the file and the fix."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"{path}: cannot read it ({e.strerror or e})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"{path}: YAML needs PyYAML (pip install 'ascnet[yaml]' or pyyaml), "
                             "or give the same keys as a .json file") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML ({e})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e}); a .yaml/.yml name reads it as YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: holds a {type(data).__name__}, not a mapping of option names to values")
    return data


def _flat(data: dict) -> dict:
    """`clip: {clip_len: 16}` -> `clip_len: 16`; dashes in names -> underscores."""
    out = {}
    for key, value in data.items():
        key = str(key).replace("-", "_")
        items = value.items() if isinstance(value, dict) else [(key, value)]
        for k, v in items:
            out[str(k).replace("-", "_")] = v
    return out


def _load_config_file(ctx: click.Context, param: click.Parameter, path: str | None):
    if not path:
        return
    try:
        data = _flat(read_config_file(path))
    except ValueError as e:
        raise click.BadParameter(str(e), ctx=ctx, param=param) from None
    names = {}  # a key of the file -> the parameter it sets: its name, or a flag's name (`init` for --init)
    for p in ctx.command.params:
        if p is param or not p.expose_value or p.name is None:
            continue
        for alias in [p.name] + [o.lstrip("-").replace("-", "_") for o in p.opts if o.startswith("--")]:
            names.setdefault(alias, p)
    defaults = dict(ctx.default_map or {})
    for key, value in data.items():
        if key not in names:
            near = difflib.get_close_matches(key, list(names), n=1)
            hint = f"; did you mean '{near[0]}'?" if near else f"; the options are: {', '.join(sorted(names))}"
            raise click.BadParameter(f"{path}: '{key}' is not an option of this command{hint}", ctx=ctx, param=param)
        p = names[key]
        if value is None:  # null: the option's own default
            continue
        if isinstance(value, (list, tuple)) and not p.multiple:
            value = ",".join(map(str, value))  # tuples are comma-separated options
        elif p.multiple and not isinstance(value, (list, tuple)):
            value = [value]
        elif isinstance(p.type, click.Choice) and not isinstance(value, str):
            value = str(value)
        defaults[p.name] = value
    ctx.default_map = defaults


def _parse(name: str, tp, value):
    if get_origin(tp) is not tuple or not isinstance(value, str):
        return value
    item, hint = get_args(tp)[0], "--" + name.replace("_", "-")
    parts = [v.strip() for v in value.split(",") if v.strip()]
    if (allowed := literal_args(item)) is not None:
        bad = [v for v in parts if v not in allowed]
        if bad or not parts:
            raise click.BadParameter(f"{value!r}: allowed values are {', '.join(allowed)} (comma-separated)", param_hint=hint)
        return tuple(parts)
    try:
        return tuple(item(v) for v in parts)
    except ValueError:
        what, example = ("integers", "1,2,4,8") if item is int else ("numbers", "0.4,1.0")
        raise click.BadParameter(f"{value!r}: give {what} separated by commas, e.g. {example}", param_hint=hint) from None


def from_options(cls, options: dict, *, skip=(), **extra):
    """The config of `cls` from a command's options (tuples parsed, inner dataclasses built); `skip`
    as given to `config_options`; `extra` sets fields that are not options."""
    top, inner = {}, {}
    for name, outer, tp, _, _ in _leaves(cls, skip):
        if name not in options:
            continue
        value = _parse(name, tp, options[name])
        if outer is None:
            top[name] = value
        else:
            inner.setdefault(outer, {})[name] = value
    types = hints(cls)
    for outer, values in inner.items():
        top[outer] = _checked(types[outer](**values))
    return cls(**top, **extra)


def _checked(spec):
    """An inner spec's own check(), its ValueError turned into the error of the option it names."""
    try:
        return spec.check() if hasattr(spec, "check") else spec
    except ValueError as e:
        name = str(e).split("=", 1)[0]
        hint = "--" + name.replace("_", "-") if name.isidentifier() else None
        raise click.BadParameter(str(e), param_hint=hint) from None
