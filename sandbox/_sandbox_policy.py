"""The policy a sandbox runs: the file a config names, loaded, linted and cached per file.

Also turns what Inspect passes as a sandbox config (a policy path or a `SandboxConfig`) into the
provider's `SandboxConfig`.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from inspect_ai.util import SandboxEnvironmentConfigType
from pydantic import BaseModel

from ._approval import approval_of
from ._config import SandboxConfig
from ._errors import PolicyError, SandboxError, display_path
from ._policy import Policy


@dataclass(frozen=True)
class LoadedSandboxPolicy:
    """A policy ready to run: where it came from, and where its relative paths resolve."""

    path: Path
    policy: Policy
    policy_dir: Path
    warnings: tuple[str, ...] = ()
    files: tuple[Path, ...] = ()
    """The policy file and the parents it extends, child first."""
    approval: Path | None = None
    """The approval policy file `tools.approval` names (resolved), applied to every sample."""


_policy_cache: dict[str, tuple[tuple[int, ...], LoadedSandboxPolicy]] = {}
_policy_lock = threading.Lock()


def find_policy_file(path: str | Path) -> Path:
    """The policy file a config names.

    Inspect makes a relative sandbox config path relative to the task's directory, so a
    `--sandbox tierlock:policies/x.yaml` given from the project root arrives as
    `<task dir>/policies/x.yaml`. When that does not exist, the path as typed is looked up in the
    working directory: the longest trailing part of it that names a file there. Nothing else is
    searched, so a policy never resolves to a same-named file somewhere unexpected.
    """
    p = Path(path)
    if p.is_file():
        return p.resolve()
    bases = [Path.cwd()]
    if os.environ.get("PWD") and Path(os.environ["PWD"]).resolve() != Path.cwd().resolve():
        bases.append(Path(os.environ["PWD"]))
    parts = p.parts
    for k in range(len(parts) - 1, 0, -1):
        tail = Path(*parts[-k:])
        for base in bases:
            candidate = base / tail
            if candidate.is_file():
                return candidate.resolve()
    raise PolicyError(f"{display_path(p)}: policy file not found")


def load_sandbox_policy(path: str | Path) -> LoadedSandboxPolicy:
    """Load, lint and cache a policy file; lint errors raise `PolicyError` (nothing runs).

    The cache is keyed by the file and checked against the modification times of every file of
    its `extends` chain, so editing a parent policy takes effect at the next sample.
    """
    from ._lint import has_errors, lint_policy
    from ._loader import load_policy_file

    file = find_policy_file(path)
    with _policy_lock:
        cached = _policy_cache.get(str(file))
    if cached is not None and cached[0] == _stamps(cached[1].files):
        return cached[1]
    loaded = load_policy_file(file)
    problems = lint_policy(loaded.policy, source=loaded)
    if has_errors(problems):
        ordered = sorted(problems, key=lambda p: p.severity != "error")
        raise PolicyError(f"{loaded.source}: policy has lint errors", ordered)
    result = LoadedSandboxPolicy(
        path=file,
        policy=loaded.policy,
        policy_dir=loaded.defined_in(("process", "seccomp")).parent.resolve(),
        warnings=tuple(str(p) for p in problems),
        files=tuple(Path(f) for f in loaded.files),
        approval=approval_of(loaded),
    )
    with _policy_lock:
        _policy_cache[str(file)] = (_stamps(result.files), result)
    return result


def _stamps(files: tuple[Path, ...]) -> tuple[int, ...]:
    """Modification times of a policy's files (-1 for one that is gone)."""
    out = []
    for f in files:
        try:
            out.append(f.stat().st_mtime_ns)
        except OSError:
            out.append(-1)
    return tuple(out)


def sandbox_config(config: SandboxEnvironmentConfigType | None) -> SandboxConfig:
    """The provider's config from what Inspect passes: a policy path or a `SandboxConfig`."""
    if isinstance(config, SandboxConfig):
        return config
    if isinstance(config, str):
        return SandboxConfig(policy=config)
    if isinstance(config, BaseModel):
        return SandboxConfig.model_validate(config.model_dump())
    raise SandboxError(
        "the tierlock sandbox needs a policy: sandbox=('tierlock', 'policies/<tier>.yaml')"
    )
