"""Type-check tierlock as it is installed: `tierlock.sandbox`, `tierlock.runner`, `tierlock.tasks`.

The repository keeps those packages as top-level folders and setuptools maps them into the
`tierlock.` namespace (pyproject.toml, `package-dir`). mypy cannot follow the editable install's
import hook, so this builds the installed layout as a tree of symlinks in a temporary directory
and points mypy at it. Usage: `python tests/typecheck.py [extra mypy arguments]`; exit status is
mypy's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sandbox", "runner", "tasks")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tierlock-mypy-") as tmp:
        namespace = Path(tmp) / "tierlock"
        namespace.mkdir()
        for name in (*PACKAGES, "policies"):
            (namespace / name).symlink_to(ROOT / name, target_is_directory=True)
        env = dict(os.environ, MYPYPATH=tmp)
        argv = [sys.executable, "-m", "mypy"]
        for name in PACKAGES:
            argv += ["-p", f"tierlock.{name}"]
        return subprocess.call([*argv, *sys.argv[1:]], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
