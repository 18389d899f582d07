"""The policy field reference, generated from the policy model (`_policy.Policy`).

`policy_reference()` renders every field of every section — key, type, default, meaning — as
Markdown; `tierlock policy reference` prints it and `policies/REFERENCE.md` is its checked-in
copy (a test fails when the two drift, or when a field has no description). `model_reference`
renders any pydantic models the same way (the task authoring reference, `tasks/_reference.py`).
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, PlainSerializer, TypeAdapter
from pydantic.fields import FieldInfo

from ._policy import Policy
from ._units import format_duration, format_size_unit

HEADER = """\
# Policy field reference

Generated from the policy model (`tierlock.sandbox._policy`) by `tierlock policy reference`; do
not edit by hand (`tests/test_policy_reference.py` fails when this file and the model drift).
Unknown keys are errors everywhere; every default is the strict one. Sizes need a unit (`k`, `m`,
`g`, `t` or `KiB`…`TiB`; `b` for bytes); durations take `s`, `m`, `h`, `d`.
"""


def policy_reference() -> str:
    """The reference as Markdown: the top-level keys, then one table per section."""
    return HEADER + "\n" + model_reference([Policy], by_class=False)


def model_reference(roots: list[type[BaseModel]], *, by_class: bool = True) -> str:
    """One table per model (root models, then the models their fields hold), as Markdown.

    `by_class`: sections are titled by class name and fields by their own name (a library's
    models); otherwise by key path from the first root (a file format such as a policy)."""
    out: list[str] = []
    sections: list[tuple[str, type[BaseModel]]] = [("", m) for m in roots]
    seen: set[type[BaseModel]] = set()
    while sections:
        prefix, model = sections.pop(0)
        if model in seen:
            continue
        seen.add(model)
        title = f"`{model.__name__}`" if by_class else (f"`{prefix}`" if prefix else "Top level")
        doc = " ".join((model.__doc__ or "").split())
        out += [f"## {title}", "", doc, "", "| key | type | default | meaning |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            key = f"{prefix}.{name}" if prefix and not by_class else name
            nested = _nested_model(field.annotation)
            if nested is not None:
                many = get_origin(_unoptional(field.annotation)) is list
                sections.append((f"{key}[]" if many else key, nested))
            kind = _type(field)
            if by_class and nested is not None:
                kind = kind.replace("section", f"`{nested.__name__}`")
            out.append(
                f"| `{key}` | {kind} | {_default(field, nested)} | "
                f"{_cell(field.description or '')} |"
            )
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def undescribed_fields(roots: list[type[BaseModel]] | None = None) -> list[str]:
    """Keys of fields without a description (the reference would leave them unexplained);
    default: the policy model's."""
    missing = []
    todo: list[tuple[str, type[BaseModel]]] = [("", m) for m in roots or [Policy]]
    while todo:
        prefix, model = todo.pop()
        for name, field in model.model_fields.items():
            key = f"{prefix}.{name}" if prefix else name
            if roots is not None and not prefix:
                key = f"{model.__name__}.{name}"
            if not field.description:
                missing.append(key)
            nested = _nested_model(field.annotation)
            if nested is not None:
                todo.append((key, nested))
    return sorted(set(missing))


def _unoptional(annotation: Any) -> Any:
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    inner = _unoptional(annotation)
    if get_origin(inner) is list:
        inner = get_args(inner)[0]
    elif get_origin(inner) is dict:  # a mapping of name → model (e.g. a task's services)
        inner = get_args(inner)[1]
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return inner
    return None


def _type(field: FieldInfo) -> str:
    text = _type_name(field.annotation, list(field.metadata))
    return f"{text} or null" if _optional(field.annotation) else text


def _optional(annotation: Any) -> bool:
    return get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in get_args(
        annotation
    )


def _type_name(annotation: Any, metadata: list[Any]) -> str:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        base, *meta = get_args(annotation)
        return _type_name(base, [*metadata, *meta])
    for m in metadata:
        if isinstance(m, PlainSerializer) and m.func is format_size_unit:
            return "size"
        if isinstance(m, PlainSerializer) and m.func is format_duration:
            return "duration"
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return " or ".join(_type_name(a, metadata) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in get_args(annotation))
    if origin is list:
        return f"list of {_type_name(get_args(annotation)[0], [])}"
    if origin is dict:
        k, v = get_args(annotation)
        return f"mapping {_type_name(k, [])} → {_type_name(v, [])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return {str: "text", int: "integer", float: "number", bool: "true/false"}.get(
        annotation, getattr(annotation, "__name__", str(annotation))
    )


def _default(field: FieldInfo, nested: type[BaseModel] | None) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if nested is not None and isinstance(value, BaseModel):
        return "see below"
    annotation: Any = field.annotation
    if field.metadata:  # pydantic moves a field's own Annotated metadata here
        annotation = typing.Annotated[(annotation, *field.metadata)]
    shown = TypeAdapter(annotation).dump_python(value, mode="json")
    if shown is None:
        return "null"
    if shown in ([], {}, ""):
        return "empty"
    if isinstance(shown, list) and all(isinstance(x, dict) for x in shown):
        return "; ".join(", ".join(f"{k}: {v}" for k, v in x.items()) for x in shown)
    return _cell(str(shown).lower() if isinstance(shown, bool) else str(shown))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
