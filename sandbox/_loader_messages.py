"""Plain words for what is wrong in a policy: pydantic's validation errors turned into one
`Problem` each (at the key or value they concern), and values described without quoting a file
(`describe_value`: at most the offending token)."""

from __future__ import annotations

import datetime
import difflib
import types
import typing
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from ._errors import Problem
from ._loader_positions import KeyPath, PositionIndex, one_line
from ._policy import Policy
from ._units import ERROR_RULES, short


def value_kind(value: Any) -> str:
    """What kind of value this is, without its contents."""
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool | int | float):
        return "a number" if not isinstance(value, bool) else "true or false"
    return describe_value(value)


def describe_value(value: Any) -> str:
    """A value as quoted in a message: short, one line (the offending token, never a file)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return short(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, datetime.date):
        return f"a date ({value.isoformat()})"
    if isinstance(value, bytes):
        return "binary data"
    return type(value).__name__


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model describing the mapping at `loc`, if any."""
    tp: Any = Policy
    for part in loc:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
            f = tp.model_fields.get(part)
            if f is None:
                return None
            tp = f.annotation
        elif origin is list and isinstance(part, int):
            tp = typing.get_args(tp)[0]
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _choices(expected: str) -> str:
    """pydantic's `'a', 'b' or 'c'` as `a, b, c`."""
    return expected.replace(" or ", ", ").replace("'", "")


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
}


def error_message(err: Any) -> tuple[str, bool]:
    """Plain words for one pydantic error, and whether it points at the key (not the value)."""
    kind, loc, value = err["type"], tuple(err["loc"]), err.get("input")
    ctx = err.get("ctx") or {}
    if kind in ERROR_RULES:  # tierlock's own messages (units, limits): already plain words
        return str(err["msg"]), False
    if kind == "missing":
        return "required key is missing", True
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        allowed = list(model.model_fields) if model else []
        msg = "unknown key"
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        if close:
            msg += f" (did you mean {close[0]!r}?)"
        if allowed:
            msg += f"; allowed here: {', '.join(allowed)}"
        return msg, True
    if kind == "literal_error":
        return f"{describe_value(value)} is not one of {_choices(str(ctx.get('expected', '')))}", False
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {describe_value(value)}", False
    if kind in ("model_type", "model_attributes_type"):
        model = _model_at(loc)
        keys = f" (keys: {', '.join(model.model_fields)})" if model else ""
        return f"expected a mapping{keys}, got {describe_value(value)}", False
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, "), False
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return ("must not be empty" if n == 1 else f"must be at least {n} characters long"), False
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        words = {
            "greater_than": "greater than",
            "greater_than_equal": "at least",
            "less_than": "less than",
            "less_than_equal": "at most",
        }[kind]
        bound = next(iter(ctx.values()), "?")
        return f"must be {words} {bound}, got {describe_value(value)}", False
    if kind == "finite_number":
        return f"must be a finite number, got {describe_value(value)}", False
    msg = str(err["msg"])
    return f"{msg[:1].lower()}{msg[1:]}, got {describe_value(value)}", False


def validation_problems(e: ValidationError, positions: PositionIndex) -> list[Problem]:
    out = []
    for err in e.errors():
        loc: KeyPath = tuple(p for p in err["loc"] if isinstance(p, str | int))
        msg, at_key = error_message(err)
        rule = ERROR_RULES.get(err["type"], "")
        out.append(Problem(positions.locate(loc, at_key=at_key), one_line(msg), rule=rule))
    return out
