"""The installed inspect-k8s-sandbox chart (`agent-env`): where its values schema is, and
checking translated values against it. Nothing here is needed to translate a policy; without the
package (`pip install 'tierlock[k8s]'`) values are simply not checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._errors import SandboxError

CHART_SCHEMA = ("k8s_sandbox", "resources/helm/agent-env/values.schema.json")
"""Where inspect-k8s-sandbox ships the chart's values schema: package, resource path."""


def chart_schema_path() -> Path | None:
    """The installed chart's `values.schema.json`, or None when inspect-k8s-sandbox is not
    installed (`pip install 'tierlock[k8s]'`)."""
    from importlib.util import find_spec

    spec = find_spec(CHART_SCHEMA[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / CHART_SCHEMA[1]
    return path if path.is_file() else None


def check_against_chart(values: dict[str, Any]) -> bool:
    """Validate `values` against the installed chart's schema; False when it is not installed.
    Raises `SandboxError` (one line naming the value) if they do not validate."""
    path = chart_schema_path()
    if path is None:
        return False
    import jsonschema

    schema = json.loads(path.read_text())
    error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(schema).iter_errors(values))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top)"
        raise SandboxError(f"values {where}: rejected by the chart's schema: {error.message[:200]}")
    return True
