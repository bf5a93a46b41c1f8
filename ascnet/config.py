"""Config dataclasses, read by their type hints: the allowed values of a field are its `Literal`
type, owned by the module that defines the thing (`models.Arch`, `sampling.Rate`,
`pipelines.backends.Backend`, ...), and both `check_choices` and the CLI (`cli.options`) take
them from there."""
from __future__ import annotations

import typing
from dataclasses import fields
from functools import cache
from typing import Literal, get_args, get_origin

Device = Literal["auto", "cpu", "cuda"]


@cache
def hints(cls) -> dict[str, object]:
    """field name -> resolved type of a config dataclass (postponed annotations evaluated)."""
    return typing.get_type_hints(cls)


def choices(cls) -> dict[str, tuple]:
    """field name -> its allowed values, for the fields typed by a `Literal`."""
    out = {}
    for name, tp in hints(cls).items():
        if get_origin(tp) is Literal:
            out[name] = get_args(tp)
    return out


def check_choices(cfg) -> None:
    """ValueError naming the first field whose value its Literal type does not allow."""
    for name, allowed in choices(type(cfg)).items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"{name}={getattr(cfg, name)!r} is not allowed; allowed: {list(allowed)}")


def field_names(cls) -> list[str]:
    return [f.name for f in fields(cls)]
