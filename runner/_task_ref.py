"""What a campaign's `task:` names: a `.py` file, a dotted module, or an Inspect registry name.

- `path/to/file.py[@name]`: relative to the campaign file;
- `package.module[@name]`: a module found on the Python path as `import` would find it, e.g.
  `tierlock.tasks.tool_restricted.safety@tool_restricted_safety` (the installed tasks, wherever
  the wheel put them);
- anything else (no `.py`, no dot): an Inspect registry name, left to Inspect.

Files and modules become an absolute file path for Inspect, so pinning hashes a module's file
(and the `data/` folder beside it) exactly as it hashes a task file.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from tierlock.sandbox import TierlockError

MODULE_REF = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
"""A task named as a dotted module; a name without a dot is an Inspect registry name."""


def task_file(base: Path, task: str) -> Path | None:
    """The `.py` file `task` names (`@name` ignored): a path made absolute against `base`, or a
    module's file; None for a registry name. Raises `TierlockError` (one line) for a module that
    cannot be found."""
    ref = task.partition("@")[0]
    if ref.endswith(".py"):
        return (base / ref).resolve()
    if MODULE_REF.fullmatch(ref):
        return module_file(ref)
    return None


def module_file(name: str) -> Path:
    """The `.py` file of module `name`, found as `import` would find it (its parent packages are
    imported, the module itself is not). Raises `TierlockError` naming the module."""
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError as e:
        raise TierlockError(f"task module {name} not found (no module named {e.name!r})") from None
    except Exception as e:  # a parent package that fails to import: the user's code
        raise TierlockError(
            f"task module {name} cannot be found: importing its package failed "
            f"({type(e).__name__}: {' '.join(str(e).split())[:200]})"
        ) from None
    if spec is None:
        raise TierlockError(f"task module {name} not found")
    origin = spec.origin if spec.has_location else None
    if origin is None or not origin.endswith(".py"):
        raise TierlockError(
            f"task module {name} is not a Python source file ({origin or 'no file'})"
        )
    return Path(origin).resolve()
