"""The one way a command's options are built: one click option per field of its config
dataclass, type, default and allowed values taken from the field (`ascnet.config`), the help
from the command's HELP dict. Tuples are given comma-separated (`--speeds 1,2,4`)."""
from __future__ import annotations

from dataclasses import MISSING, fields
from types import UnionType
from typing import Union, get_args, get_origin

import click

from ascnet.config import choices, hints


def _is_tuple(tp) -> bool:
    return get_origin(tp) is tuple


def _plain(tp):
    """`X | None` -> X (the option is simply left out for None); any other type as it is."""
    if get_origin(tp) in (Union, UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def config_options(cls, help: dict[str, str], *, skip=(), arguments=()):
    """Decorator: the options of every field of `cls` but `skip`; `arguments` become positional."""
    allowed, types = choices(cls), hints(cls)

    def decorate(func):
        for f in reversed(fields(cls)):
            if f.name in skip:
                continue
            tp, flag = _plain(types[f.name]), "--" + f.name.replace("_", "-")
            if f.name in arguments:
                func = click.argument(f.name, type=click.Path() if tp is str else None)(func)
                continue
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            kw = {"default": default, "show_default": True, "help": help[f.name]}
            if f.name in allowed:
                kw["type"] = click.Choice([str(v) for v in allowed[f.name]])
            elif tp is bool:
                flag = f"{flag}/--no-{f.name.replace('_', '-')}"
            elif _is_tuple(tp):
                kw["default"] = ",".join(map(str, default))
            else:
                kw["type"] = tp
            func = click.option(flag, f.name, **kw)(func)
        return func

    return decorate


def from_options(cls, options: dict, **extra):
    """The config of `cls` from a command's options (tuples parsed from their comma-separated text)."""
    types, values = hints(cls), dict(options)
    for name, value in options.items():
        tp = _plain(types.get(name))
        if tp is not None and _is_tuple(tp) and isinstance(value, str):
            item = get_args(tp)[0]
            try:
                values[name] = tuple(item(v.strip()) for v in value.split(",") if v.strip())
            except ValueError:
                what, example = ("integers", "1,2,4,8") if item is int else ("numbers", "0.4,1.0")
                raise click.BadParameter(f"{value!r}: give {what} separated by commas, e.g. {example}",
                                         param_hint="--" + name.replace("_", "-")) from None
    return cls(**values, **extra)
