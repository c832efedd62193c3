"""Typed config fields, one way everywhere: a dataclass field's declared type decides what a value
may be (an integer is no bool, a number is finite, a tuple holds numbers) and how text from a
flag, a ``--set`` or a sweep's grid parses; its help text travels with it. The run's configs
(``subconfigs.DataConfig``, ``subconfigs.ModelConfig``, ``config.TrainConfig``) check their own
fields with :func:`check_fields` once, when made.
"""
from __future__ import annotations

import functools
import math
import reprlib
import typing
from dataclasses import field, fields

__all__ = ["SEED_MAX", "LR_MAX", "shown", "described", "kinds", "hints", "check", "check_fields", "coerce"]

SEED_MAX = 2 ** 32 - 1  # torch's generators refuse seeds past 64 bits, numpy's past 32
LR_MAX = 1e6            # an LR beyond float32's range overflows inside the optimizer step


def shown(value) -> str:
    """A value as an error message quotes it, bounded: a stored config's 10 MB string or a
    million-item list is named by its start, never printed (or even formatted) whole.

    >>> len(shown("x" * 10 ** 6)), shown(list(range(10 ** 6)))
    (80, '[0, 1, 2, 3, 4, 5, 6, 7, ...]')
    """
    return _REPR.repr(value)


_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 80, 80, 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8


def described(default, help: str, **kw):
    """A dataclass field with its help text (the CLI's flag help, the pages' tooltips)."""
    return field(default=default, metadata={"help": help}, **kw)


@functools.cache
def hints(cls: type) -> dict:
    """A dataclass's declared field types, resolved (its module writes them as strings)."""
    return typing.get_type_hints(cls)


def kinds(hint) -> tuple:
    """The concrete types a field accepts (``type(None)`` when optional).

    >>> kinds(int | None)
    (<class 'int'>, <class 'NoneType'>)
    """
    args = typing.get_args(hint)
    return tuple(args) if args else (hint,)


def _fits(value, k) -> bool:
    if k is bool:
        return isinstance(value, bool)
    if k is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if k is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if k is tuple:
        return isinstance(value, (tuple, list))
    return isinstance(value, k)


def _expected(ks: tuple) -> str:
    return " or ".join("none" if k is type(None) else "a finite number" if k is float else
                       "an integer" if k is int else "true/false" if k is bool else
                       "comma-separated numbers" if k is tuple else "text" if k is str else k.__name__ for k in ks)


def check(name: str, value, hint) -> None:
    """ValueError naming ``name`` unless ``value`` is of the declared type ``hint``.

    >>> check("epochs", True, int)
    Traceback (most recent call last):
    ValueError: Invalid epochs: True (expected an integer)
    """
    if not any(_fits(value, k) for k in kinds(hint)):
        raise ValueError(f"Invalid {name}: {shown(value)} (expected {_expected(kinds(hint))})")


def check_fields(obj, names: dict[str, str] | None = None) -> None:
    """Every field of the dataclass instance ``obj`` checked against its declared type; errors
    name a field as ``names`` maps it (the name a user typed: ``dataset`` for ``DataConfig``'s)."""
    types = hints(type(obj))
    for f in fields(obj):
        check((names or {}).get(f.name, f.name), getattr(obj, f.name), types[f.name])


def coerce(name: str, hint, text: str):
    """``text`` parsed as a value of type ``hint``; ValueError names the field ``name``.

    Booleans take true/false only (``yes`` and ``no`` are refused, not guessed); numbers must be
    finite; optional fields take ``none``; a tuple takes comma-separated numbers.

    >>> coerce("thresholds", tuple, "0.5, 0.9"), coerce("width", int | None, "none")
    ((0.5, 0.9), None)
    """
    ks, t = kinds(hint), text.strip()
    if type(None) in ks and t.lower() in ("none", "null", ""):
        return None
    for k in ks:
        try:
            if k is bool and t.lower() in ("true", "false"):
                return t.lower() == "true"
            if k is int and t.lstrip("+-").isdigit():
                return int(t)
            if k is float:
                v = float(t)
                if math.isfinite(v):
                    return v
            if k is tuple:
                return tuple(float(s) for s in t.split(",") if s.strip())
        except ValueError:
            continue
    if str in ks and t:
        return t
    raise ValueError(f"Invalid {name}: {shown(t)} (expected {_expected(ks)})")
