"""Config dataclasses, read by their type hints: the allowed values of a field are its `Literal`
type, owned by the module that defines the thing (`models.Arch`, `sampling.Rate`,
`pipelines.backends.Backend`, ...), and both `check_choices` and the CLI (`cli.options`) take
them from there."""
from __future__ import annotations

import typing
from dataclasses import fields
from functools import cache
from types import UnionType
from typing import Literal, Union, get_args, get_origin

Device = Literal["auto", "cpu", "cuda"]


@cache
def hints(cls) -> dict[str, object]:
    """field name -> resolved type of a config dataclass (postponed annotations evaluated)."""
    return typing.get_type_hints(cls)


def literal_args(tp) -> tuple | None:
    """The values of a `Literal` type, or of the Literal in an optional one (`Arch | None`); else None."""
    if get_origin(tp) is Literal:
        return get_args(tp)
    lits = [a for a in get_args(tp) if get_origin(a) is Literal] if get_origin(tp) in (Union, UnionType) else []
    return get_args(lits[0]) if lits else None


def choices(cls) -> dict[str, tuple]:
    """field name -> its allowed values, for the fields typed by a `Literal` (or an optional one)."""
    out = {}
    for name, tp in hints(cls).items():
        if (args := literal_args(tp)) is not None:
            out[name] = args
    return out


def check_choices(cfg) -> None:
    """ValueError naming the first field whose value its Literal type does not allow (None passes
    where the type is optional)."""
    for name, allowed in choices(type(cfg)).items():
        if getattr(cfg, name) not in allowed and getattr(cfg, name) is not None:
            raise ValueError(f"{name}={getattr(cfg, name)!r} is not allowed; allowed: {list(allowed)}")


def field_names(cls) -> list[str]:
    return [f.name for f in fields(cls)]
