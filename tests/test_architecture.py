"""The plan of the house: imports point one way down the layers; modules stay small and say what
they own. ARCHITECTURE.md draws the same layers; this file is where they are enforced.

Layers, bottom to top (a module may import its own layer and the layers below it, never above):

    0 policy   the policy model in tierlock.sandbox (parse, bounds, lint, ladder), tierlock.policies
    1 sandbox  Docker enforcement: the rest of tierlock.sandbox, with the package's face (__init__)
    2 audit    tierlock.runner._audit: detectors over transcripts, findings, reports, the scorer
    3 tasks    tierlock.tasks: Inspect tasks, their data, the scripted agents
    4 runner   tierlock.runner: campaigns, gate, ledger, phases, series (the package's face too)
    5 entry    the CLI (runner/cli.py, runner/_cli_*.py) and Inspect's entry point (runner/_registry.py)

An import is any `import`/`from … import` anywhere in a module (top level, inside a function, under
`TYPE_CHECKING`), and `importlib.import_module("…")` / `__import__("…")` with a literal name.
`import_graph` reads the source tree with `ast`; nothing is imported to build it. Why not
import-linter's `layers` contract: it refuses a layer nested in another one ("Layers cannot contain
other layers", 2.17), yet the audit is a layer below the tasks inside tierlock.runner, and the
policy model a layer below the sandbox inside tierlock.sandbox; its graph (grimp) also misses
`importlib.import_module("…")`.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYERS = ("policy", "sandbox", "audit", "tasks", "runner", "entry")

POLICY_MODEL = frozenset(
    {"_errors", "_userfile", "_units", "_bounds", "_allow", "_ladder", "_reference"}
)
"""tierlock.sandbox modules that are the policy model: what a policy says, read and judged without
Docker. Modules named `_policy*`, `_loader*` and `_lint*` belong to it too (`POLICY_PREFIXES`)."""
POLICY_PREFIXES = ("_policy", "_loader", "_lint")

ENTRY_MODULES = frozenset({"tierlock.runner.cli", "tierlock.runner._registry"})
"""The top: what a user or Inspect starts. `tierlock.runner._cli_*` modules are the CLI too."""

KNOWN_CYCLES = {
    # `Ledger.verify()` hands over to `_verify.verify_chain` (imported inside the method), and
    # `_verify` reads the ledger's rows: one concept in two files; merge or invert when the
    # ledger is split.
    frozenset({"tierlock.runner._ledger", "tierlock.runner._verify"}),
}
"""Modules that import each other today (only inside functions or for type checking)."""

LOAD_EXCEPTIONS = {
    # tierlock.sandbox's face (__init__) imports the whole package, so importing a policy module
    # loads the sandbox layer too (never the audit, tasks or runner). A lazy face would lift this.
    "policy": frozenset({"sandbox"}),
}
"""Higher layers that importing a layer may load at run time, and why."""

MAX_LINES = 400
OVERSIZED: dict[str, str] = {
    # A module over MAX_LINES, with the reason it cannot be split yet (none today). Remove a line
    # as soon as its module is split (the test says when).
}


# --- the import graph ------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One module of the tree: its dotted name, its file, whether it is a package's __init__."""

    name: str
    path: Path
    is_package: bool


@dataclass(frozen=True)
class Import:
    """`importer` imports `target` (a module of the tree) at `line`."""

    importer: str
    target: str
    line: int


def package_dirs(root: Path) -> dict[str, Path]:
    """`tierlock.x` → its folder, from pyproject's `[tool.setuptools.package-dir]`."""
    with open(root / "pyproject.toml", "rb") as f:
        mapping = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return {package: root / folder for package, folder in mapping.items()}


def source_modules(root: Path = ROOT) -> dict[str, Source]:
    """Every Python module of the installed namespace, by dotted name."""
    found: dict[str, Source] = {}
    for package, folder in package_dirs(root).items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            subfolders = [folder.joinpath(*parts[:i]) for i in range(1, len(parts))]
            if not all((d / "__init__.py").is_file() for d in subfolders):
                continue  # task data (code shown to the model), not a module of tierlock
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            name = ".".join([package, *parts])
            found[name] = Source(name, path, is_package)
    return found


def _absolute(source: Source, level: int, module: str | None) -> str:
    """The absolute name of a relative import (`from ..x import y` → its package's `x`)."""
    if not level:
        return module or ""
    base = source.name.split(".")
    if not source.is_package:
        base.pop()
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _literal_import(node: ast.Call) -> str | None:
    """The module a call `importlib.import_module("x")` or `__import__("x")` names, if literal."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return None
    if first.value.startswith("."):
        package = next((k.value for k in node.keywords if k.arg == "package"), None)
        if isinstance(package, ast.Constant) and isinstance(package.value, str):
            level = len(first.value) - len(first.value.lstrip("."))
            anchor = Source(package.value, Path(), is_package=True)
            return _absolute(anchor, level, first.value.lstrip(".") or None)
        return None
    return first.value


def _known(name: str, modules: dict[str, Source]) -> str | None:
    """`name` or its nearest enclosing module of the tree (`a.b.C` → `a.b`), if any."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imports_of(source: Source, modules: dict[str, Source]) -> list[Import]:
    """Every import of a module of the tree that `source` makes, wherever it is written."""
    tree = ast.parse(source.path.read_text(encoding="utf-8"), filename=str(source.path))
    named: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            named += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(source, node.level, node.module)
            for alias in node.names:
                # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
                sub = f"{base}.{alias.name}"
                named.append((sub if sub in modules else base, node.lineno))
        elif isinstance(node, ast.Call):
            literal = _literal_import(node)
            if literal:
                named.append((literal, node.lineno))
    found = []
    for name, line in named:
        target = _known(name, modules)
        if target is not None and target != source.name:
            found.append(Import(source.name, target, line))
    return found


def import_graph(root: Path = ROOT) -> tuple[dict[str, Source], list[Import]]:
    """The tree's modules and every import between them."""
    modules = source_modules(root)
    return modules, [i for source in modules.values() for i in imports_of(source, modules)]


# --- the layers ------------------------------------------------------------------------------


def layer_of(module: str) -> int:
    """The index in `LAYERS` of a module of the tree."""
    parts = module.split(".")
    if parts[:2] == ["tierlock", "policies"]:
        return LAYERS.index("policy")
    if parts[:2] == ["tierlock", "sandbox"]:
        leaf = parts[2] if len(parts) > 2 else ""
        if leaf in POLICY_MODEL or leaf.startswith(POLICY_PREFIXES):
            return LAYERS.index("policy")
        return LAYERS.index("sandbox")
    if parts[:3] == ["tierlock", "runner", "_audit"]:
        return LAYERS.index("audit")
    if parts[:2] == ["tierlock", "tasks"]:
        return LAYERS.index("tasks")
    if module in ENTRY_MODULES or (len(parts) > 2 and parts[2].startswith("_cli_")):
        return LAYERS.index("entry")
    if parts[:2] == ["tierlock", "runner"]:
        return LAYERS.index("runner")
    raise AssertionError(f"{module} is in no layer: add it to layer_of in {__file__}")


def back_edges(modules: dict[str, Source], imports: list[Import], root: Path = ROOT) -> list[str]:
    """One line per import that points to a higher layer: `file:line: who (layer) imports …`."""
    found = []
    for imp in imports:
        low, high = layer_of(imp.importer), layer_of(imp.target)
        if high > low:
            path = modules[imp.importer].path.relative_to(root)
            found.append(
                f"{path}:{imp.line}: {imp.importer} ({LAYERS[low]}) imports {imp.target} "
                f"({LAYERS[high]})"
            )
    return sorted(found)


def cycles(imports: list[Import]) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others (Tarjan)."""
    edges: dict[str, set[str]] = {}
    for imp in imports:
        edges.setdefault(imp.importer, set()).add(imp.target)
        edges.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(groups)


# --- the tree as it is -----------------------------------------------------------------------


def test_imports_point_down_the_layers() -> None:
    modules, imports = import_graph()
    assert len(modules) > 100, "the tree was not found"
    assert back_edges(modules, imports) == [], (
        "an import points up the layers. Move the import's target down, or the importer up; a new "
        "tierlock.sandbox module of the policy model is named _policy*/_loader*/_lint* or listed "
        "in POLICY_MODEL (ARCHITECTURE.md, 'A new module')"
    )


def test_no_import_cycles_but_the_known_ones() -> None:
    _, imports = import_graph()
    found = {frozenset(group) for group in cycles(imports)}
    assert found - KNOWN_CYCLES == set(), "modules import each other: one of them should not"
    assert KNOWN_CYCLES - found == set(), "a known cycle is gone: remove it from KNOWN_CYCLES"


_LOADED = """
import importlib, json, sys
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("layer", ["policy", "sandbox", "audit", "tasks", "runner"])
def test_importing_a_layer_loads_nothing_above_it(layer: str) -> None:
    """What Python really loads, package faces (`__init__`) included, in a fresh interpreter."""
    modules = source_modules()
    level = LAYERS.index(layer)
    mine = sorted(m for m in modules if layer_of(m) == level)
    done = subprocess.run(
        [sys.executable, "-c", _LOADED, json.dumps(mine)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(json.loads(done.stdout)) & set(modules)
    # The package a loaded module sits in is always loaded first (tierlock.runner for the audit);
    # its face must then load nothing above (tierlock.runner's face is lazy for that reason).
    ancestors = {
        ".".join(m.split(".")[:i])
        for m in loaded
        if layer_of(m) <= level
        for i in range(2, m.count(".") + 1)
    }
    allowed = LOAD_EXCEPTIONS.get(layer, frozenset())
    above = sorted(
        m for m in loaded - ancestors if layer_of(m) > level and LAYERS[layer_of(m)] not in allowed
    )
    assert above == [], f"importing the {layer} layer loads modules of higher layers"


def test_runner_face_still_offers_its_names() -> None:
    """The lazy face of tierlock.runner: every name of `__all__` is there, none is loaded early."""
    code = (
        "import sys, tierlock.runner as r; "
        "early = [m for m in sys.modules if m.startswith('tierlock.runner.')]; "
        "[getattr(r, n) for n in r.__all__]; "
        "from tierlock.runner import _ledger, Ledger; "
        "assert Ledger is _ledger.Ledger; print(len(r.__all__), early)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    count, early = done.stdout.split(" ", 1)
    assert int(count) >= 20
    assert early.strip() == "[]"


def test_no_module_over_the_line_limit_but_the_listed_ones() -> None:
    lengths = {
        name: len(source.path.read_text(encoding="utf-8").splitlines())
        for name, source in source_modules().items()
    }
    over = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert sorted(set(over) - set(OVERSIZED)) == [], f"split these (one job each): {over}"
    done = sorted(name for name in OVERSIZED if lengths.get(name, 0) <= MAX_LINES)
    assert done == [], "under the limit now (or gone): remove them from OVERSIZED"


def test_every_module_says_what_it_owns() -> None:
    silent = [
        name
        for name, source in source_modules().items()
        if not (ast.get_docstring(ast.parse(source.path.read_text(encoding="utf-8"))) or "").strip()
    ]
    assert silent == [], "each module starts with a docstring saying what it owns"


# --- the checker itself can fail ----------------------------------------------------------------


def _plant(root: Path, files: dict[str, str]) -> None:
    """A synthetic tree with the real package-dir mapping and the given modules."""
    (root / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'"""{rel}"""\n{text}', encoding="utf-8")


_CLEAN = {
    "sandbox/__init__.py": "from ._policy import Policy\nfrom . import _provider\n",
    "sandbox/_policy.py": "from ._units import size\n",
    "sandbox/_units.py": "",
    "sandbox/_provider.py": "from tierlock.sandbox._policy import Policy\n",
    "runner/__init__.py": "",
    "runner/_audit/__init__.py": "from ._engine import audit\n",
    "runner/_audit/_engine.py": "from tierlock.sandbox import _provider\n",
    "tasks/__init__.py": "",
    "tasks/_sandboxed.py": "from tierlock.runner._audit import audit\n",
    "tasks/agents/__init__.py": "from .._sandboxed import x\n",
    "tasks/agents/data/helper.py": "from tierlock.runner import cli\n",  # data, not a module
    "runner/_run.py": "from tierlock.tasks import _sandboxed\nfrom ._audit import _engine\n",
    "runner/cli.py": "from . import _run\nimport tierlock.runner._registry\n",
    "runner/_registry.py": "import tierlock.sandbox._provider\nimport tierlock.tasks.agents\n",
}


def test_a_clean_tree_has_no_back_edges(tmp_path: Path) -> None:
    _plant(tmp_path, _CLEAN)
    modules, imports = import_graph(tmp_path)
    assert "tierlock.tasks.agents.data.helper" not in modules
    assert len(imports) >= 12
    assert back_edges(modules, imports, tmp_path) == []
    assert cycles(imports) == []


def test_every_kind_of_planted_back_edge_is_caught(tmp_path: Path) -> None:
    planted = {
        # policy -> sandbox, inside a function
        "sandbox/_policy.py": "def f():\n    from ._provider import Sandbox\n",
        # policy -> the sandbox face (which is the sandbox layer)
        "sandbox/_units.py": "from tierlock.sandbox import cleanup\n",
        # sandbox -> tasks, by a literal name given to importlib
        "sandbox/_provider.py": "import importlib\nimportlib.import_module('tierlock.tasks.agents')\n",
        # audit -> tasks, relative across packages, under TYPE_CHECKING
        "runner/_audit/_engine.py": "if TYPE_CHECKING:\n    from ...tasks import _sandboxed\n",
        # audit -> the runner's face and a runner module
        "runner/_audit/__init__.py": "from .. import _run\nfrom tierlock.runner import Ledger\n",
        # tasks -> runner, via __import__
        "tasks/_sandboxed.py": "__import__('tierlock.runner._run')\n",
        # runner -> the CLI, with importlib's package= form
        "runner/_run.py": "import importlib\nimportlib.import_module('.cli', package='tierlock.runner')\n",
    }
    _plant(tmp_path, {**_CLEAN, **planted})
    modules, imports = import_graph(tmp_path)
    found = back_edges(modules, imports, tmp_path)
    pairs = {(line.split(" ")[1], line.split(" imports ")[1].split(" ")[0]) for line in found}
    assert pairs == {
        ("tierlock.sandbox._policy", "tierlock.sandbox._provider"),
        ("tierlock.sandbox._units", "tierlock.sandbox"),
        ("tierlock.sandbox._provider", "tierlock.tasks.agents"),
        ("tierlock.runner._audit._engine", "tierlock.tasks._sandboxed"),
        ("tierlock.runner._audit", "tierlock.runner._run"),
        ("tierlock.runner._audit", "tierlock.runner"),
        ("tierlock.tasks._sandboxed", "tierlock.runner._run"),
        ("tierlock.runner._run", "tierlock.runner.cli"),
    }
    assert all(line.startswith(("sandbox/", "runner/", "tasks/")) for line in found)
    assert found[0].split(":")[1].isdigit()  # file:line


def test_a_planted_cycle_is_caught(tmp_path: Path) -> None:
    _plant(
        tmp_path,
        {
            **_CLEAN,
            "sandbox/_images.py": "def f():\n    import importlib\n"
            "    importlib.import_module('tierlock.sandbox._proxy')\n",
            "sandbox/_proxy.py": "from ._images import Recipe\n",
        },
    )
    _, imports = import_graph(tmp_path)
    assert cycles(imports) == [["tierlock.sandbox._images", "tierlock.sandbox._proxy"]]
