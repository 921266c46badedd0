"""Plain conversion of simple command-line values, so a command starts without pydantic.

Typer (0.2x) converts every parameter through a pydantic ``TypeAdapter``: importing
pydantic costs about as much as Typer itself, before the command does any work.
A value of a plain type (``str``, ``int``, ``float``, ``bool``, ``Path`` without
checks, or a
list of one of them) needs no more than the type's own constructor, so
:func:`use_plain_conversion` gives such a parameter that conversion; every other
parameter (choices, ranges, files, checked paths) keeps Typer's.  A malformed
value is still a usage error (``bad_parameter``, exit 2).

Typer's coercion classes are internal (pyproject pins the Typer minor version
this was written against): a parameter without them keeps Typer's conversion,
and tests/test_cli_conventions.py, which checks that a fast command imports no
pydantic, says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

from typer import _click
from typer._coercion import RuntimeParam

__all__ = ["use_plain_conversion"]



def _flag(text: str) -> bool:
    """A boolean given as text (an environment variable): as click reads one."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "t", "yes", "y", "on"):
        return True
    if lowered in ("0", "false", "f", "no", "n", "off", ""):
        return False
    raise ValueError(text)


_flag.__name__ = "boolean"
_CONVERTERS: dict[Any, Callable[[str], Any]] = {
    str: str, int: int, float: float, Path: Path, bool: _flag}


def _converter(descriptor: Any) -> Callable[[str], Any] | None:
    """The plain converter for a parameter's type descriptor, None if it needs Typer's."""
    info = descriptor.parameter_info
    if descriptor.is_choice or descriptor.is_ranged or descriptor.is_file:
        return None
    if (getattr(info, "exists", False) or getattr(info, "resolve_path", False)
            or getattr(info, "allow_dash", False) or getattr(info, "path_type", None)
            or not getattr(info, "file_okay", True) or not getattr(info, "dir_okay", True)
            or getattr(info, "parser", None) is not None
            or getattr(info, "click_type", None) is not None):
        return None
    annotation = descriptor.annotation
    if get_origin(annotation) is list:
        (annotation,) = get_args(annotation) or (None,)
    return _CONVERTERS.get(annotation)


def use_plain_conversion(param: _click.Parameter) -> None:
    """Give ``param`` the plain conversion when its type allows (see the module docstring)."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or not hasattr(param, "_runtime_param"):
        return
    convert = _converter(descriptor)
    if convert is not None:
        param._runtime_param = _PlainConversion(descriptor.parameter_info,
                                                descriptor.annotation, convert)


@dataclass(frozen=True)
class _PlainConversion(RuntimeParam):
    """A value converted by its type's constructor (lists item by item)."""

    convert: Callable[[str], Any]

    def _coerce_value(self, value: Any, param: Any, ctx: _click.Context) -> Any:
        if isinstance(value, (list, tuple)):
            return [self._one(item, param, ctx) for item in value]
        return self._one(value, param, ctx)

    def _one(self, value: Any, param: Any, ctx: _click.Context) -> Any:
        if not isinstance(value, str):
            return value  # a default, already of its type
        try:
            return self.convert(value)
        except ValueError:
            name = getattr(self.convert, "__name__", "value")
            raise _click.exceptions.BadParameter(
                f"{value!r} is not a valid {name}", ctx=ctx, param=param) from None
