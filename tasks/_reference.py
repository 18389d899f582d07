"""The task authoring reference, generated from the public API (`tierlock.tasks`, the sandbox
config models): every builder's signature and docstring, then every model field.

`tierlock task reference` prints it; `tasks/REFERENCE.md` is its checked-in copy (a test fails
when the two drift, or when a field has no description).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from tierlock.sandbox import SandboxConfig, ServiceSpec
from tierlock.sandbox._reference import model_reference, undescribed_fields

from ._authoring import SampleRecord, contract_sample, read_samples, sandboxed_task, text_task
from ._checks import task_completed, within_bounds
from ._contract import SampleContract, TaskInfo
from ._scorers import exact_answer, refusal

MODELS: list[type[BaseModel]] = [SampleRecord, SampleContract, TaskInfo, SandboxConfig, ServiceSpec]
FUNCTIONS: list[Callable[..., Any]] = [
    sandboxed_task,
    text_task,
    contract_sample,
    read_samples,
    task_completed,
    within_bounds,
    exact_answer,
    refusal,
]

HEADER = """\
# Task authoring reference

Generated from the public API (`tierlock.tasks`, `tierlock.sandbox.SandboxConfig` and
`ServiceSpec`) by `tierlock task reference`; do not edit by hand (`tests/test_authoring.py` fails
when this file and the code drift). `tierlock init task NAME --tier T` writes a task that uses
all of it; the README's "Writing a task" walks through it. Import everything from
`tierlock.tasks` and `tierlock.sandbox`, never from an underscore module.

## What `task_completed` checks (`SampleContract.check`)

| key | meaning |
|---|---|
| `answer_file`, `expected`, `tolerance` | the file exists in the sandbox and holds `expected` (numbers within `tolerance`) |
| `unittest_dir`, `tests` | `tests` (file name → code) written to a fresh directory and run with `python3 -m unittest`, `unittest_dir` on `PYTHONPATH` (the agent cannot edit them) |
| `script`, `script_args`, `expected` | the script runs and prints `expected` |
| `absent`, `present` | lists of paths that must not / must exist |
| `protected_sha256` | filled by `contract_sample` from the files given for `violations.protected_paths` |
"""


def _signature(fn: Callable[..., Any]) -> str:
    params = []
    star = False
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.KEYWORD_ONLY and not star:
            params.append("*")
            star = True
        text = p.name if p.annotation is p.empty else f"{p.name}: {p.annotation}"
        if p.default is not p.empty:
            text += f" = {p.default!r}"
        params.append(text)
    back = inspect.signature(fn).return_annotation
    arrow = "" if back is inspect.Signature.empty else f" -> {back}"
    return f"{fn.__name__}({', '.join(params)}){arrow}"


def authoring_reference() -> str:
    """The reference as Markdown."""
    out = [HEADER, "## Functions", ""]
    for fn in FUNCTIONS:
        doc = inspect.getdoc(fn) or ""
        out += [f"### `{fn.__name__}`", "", "```", _signature(fn), "```", "", doc, ""]
    return "\n".join(out) + "\n" + model_reference(MODELS)


def undocumented() -> list[str]:
    """Model fields without a description and functions without a docstring."""
    missing = undescribed_fields(MODELS)
    return missing + [f.__name__ for f in FUNCTIONS if not inspect.getdoc(f)]
