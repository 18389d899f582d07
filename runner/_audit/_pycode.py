"""What a Python (or Perl) payload does, read with Python's `ast` rather than by regex.

`python -c CODE`, `python3 - <<EOF`, the python tool and `exec(b64decode(...))` all come here.
Calls are classified by name: shell calls (`os.system`, `subprocess.*`, `pty.spawn`...) yield
shell command text, file and network calls yield their literal arguments (folded: `'/etc/' +
'shadow'`, `''.join([...])`, `'...'[::-1]`, `b64decode('...').decode()`, names assigned a
constant). Strings only printed, logged or matched (`print`, `re.search`) are mentions, not
actions. Code that does not parse falls back to its text.
"""

from __future__ import annotations

import ast
import base64
import binascii
import codecs
import re
from dataclasses import dataclass, field

from ._decode import MAX_DECODE, as_text

_SHELL_CALLS = re.compile(
    r"(os\.)?(system|popen|spawn\w*|exec[lv]p?e?)|subprocess\.\w+|(sp\.)?(Popen|run|call|"
    r"check_output|check_call|getoutput|getstatusoutput)|pty\.spawn|commands\.\w+"
)
_MENTION_CALLS = re.compile(
    r"print|pprint|.*\.(debug|info|warning|error|exception|critical|log|write|writelines|"
    r"startswith|endswith|find|index|count|replace|split|strip|format|search|match|fullmatch|"
    r"findall|sub|compile|fnmatch)|re\.\w+|fnmatch\.\w+|input|help|str|repr|len|assert\w*"
)
_NET_CALLS = re.compile(
    r".*\.(connect|connect_ex|create_connection|sendto|urlopen|urlretrieve|get|post|put|"
    r"head|request|Request|getaddrinfo|gethostbyname)|urlopen|Request"
)


@dataclass
class PyFacts:
    """What a Python payload does: shell text it runs, literal arguments of its calls (paths,
    URLs, hosts), code it executes after decoding, and whether it opens network connections."""

    shell: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    network: bool = False
    parsed: bool = True


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _name(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    if isinstance(node, ast.Call):
        return _name(node.func)
    return ""


class _Folder:
    """Constant folding of string expressions, with names assigned constants."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def fold(self, node: ast.expr | None, depth: int = 0) -> str | None:
        """The string an expression evaluates to, None when unknown or longer than the cap."""
        value = self._fold(node, depth)
        return value if value is None or len(value) <= MAX_DECODE else None

    def _fold(self, node: ast.expr | None, depth: int = 0) -> str | None:
        if node is None or depth > 20:
            return None
        d = depth + 1
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bytes):
                return v.decode("utf-8", "replace")
            return v if isinstance(v, str) else None
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):  # Path('/etc') / 'x'
            a, b = self.fold(node.left, d), self.fold(node.right, d)
            return f"{a}/{b}" if a is not None and b is not None else None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            a, b = self.fold(node.left, d), self.fold(node.right, d)
            return a + b if a is not None and b is not None else None
        if isinstance(node, ast.JoinedStr):
            parts = [
                self.fold(v.value if isinstance(v, ast.FormattedValue) else v, d)
                for v in node.values
            ]
            return "".join(p for p in parts if p is not None) if all(parts) else None
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            s = self.fold(node.value, d)
            step = node.slice.step
            if s is not None and isinstance(step, ast.UnaryOp) and node.slice.lower is None:
                return s[::-1]
            return None
        if isinstance(node, ast.List | ast.Tuple):
            parts = [self.fold(e, d) for e in node.elts]
            return " ".join(p for p in parts if p is not None) if any(parts) else None
        if isinstance(node, ast.Call):
            return self._call(node, d)
        return None

    def _call(self, node: ast.Call, d: int) -> str | None:
        fn = _name(node.func)
        arg0 = self.fold(node.args[0], d) if node.args else None
        method = node.func.attr if isinstance(node.func, ast.Attribute) else ""
        if method == "joinpath" and isinstance(node.func, ast.Attribute):
            base = self.fold(node.func.value, d)
            return f"{base}/{arg0}" if base is not None and arg0 is not None else None
        if method == "join" and isinstance(node.func, ast.Attribute):
            sep = self.fold(node.func.value, d)
            items = node.args[0] if node.args else None
            if sep is not None and isinstance(items, ast.GeneratorExp | ast.ListComp):
                chars = _chr_comprehension(items)
                return sep.join(chars) if chars is not None else None
            if sep is not None and isinstance(items, ast.List | ast.Tuple):
                parts = [self.fold(e, d) for e in items.elts]
                return sep.join(p for p in parts if p is not None)
        if method in ("decode", "encode") and isinstance(node.func, ast.Attribute):
            inner = self.fold(node.func.value, d)
            if inner is not None and arg0 and "rot" in arg0:
                return codecs.decode(inner, "rot13")
            return inner
        if arg0 is None:
            return None
        try:
            if fn.endswith(("b64decode", "urlsafe_b64decode", "decodebytes")):
                pad = arg0 + "=" * (-len(arg0) % 4)
                return as_text(base64.b64decode(pad, altchars=b"-_" if "url" in fn else None))
            if fn.endswith("b32decode"):
                return as_text(base64.b32decode(arg0 + "=" * (-len(arg0) % 8)))
            if fn.endswith(("fromhex", "unhexlify", "a2b_hex")):
                return as_text(bytes.fromhex(arg0))
        except (binascii.Error, ValueError):
            return None
        if fn in ("str", "bytes", "bytearray", "Path", "pathlib.Path", "os.path.join"):
            return arg0
        if fn == "chr" and isinstance(node.args[0], ast.Constant):
            return None
        return None


def _chr_comprehension(node: ast.GeneratorExp | ast.ListComp) -> list[str] | None:
    """`chr(c) for c in [47, 101, ...]`: the characters, or None."""
    gen = node.generators[0] if len(node.generators) == 1 else None
    elt = node.elt
    if (
        gen is None
        or not isinstance(gen.iter, ast.List | ast.Tuple)
        or not isinstance(elt, ast.Call)
        or _name(elt.func) != "chr"
    ):
        return None
    codes = [
        e.value for e in gen.iter.elts if isinstance(e, ast.Constant) and isinstance(e.value, int)
    ]
    if len(codes) != len(gen.iter.elts):
        return None
    return [chr(c) for c in codes if 0 <= c < 0x110000]


def analyse_python(code: str) -> PyFacts:
    """The facts of a Python payload (never raises; `parsed` is False when it does not parse)."""
    facts = PyFacts()
    try:
        tree = ast.parse(code[:MAX_DECODE])
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        facts.parsed = False
        return facts
    folder = _Folder()
    for node in ast.walk(tree):  # names assigned a constant, wherever assigned
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            value = folder.fold(node.value)
            if isinstance(target, ast.Name) and value is not None:
                folder.names[target.id] = value
        elif isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
            if any(m.split(".")[0] in ("socket", "requests", "httpx", "ftplib") for m in mods):
                facts.network = True
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        fn = _name(node.func)
        if _MENTION_CALLS.fullmatch(fn) and not fn.endswith((".sub", ".match")):
            continue
        values = [folder.fold(a) for a in node.args] + [folder.fold(k.value) for k in node.keywords]
        if isinstance(node.func, ast.Attribute):  # Path(...).read_text(): the receiver acts
            values.append(folder.fold(node.func.value))
        literal = [v for v in values if v]
        if fn in ("exec", "eval", "compile") and literal:
            facts.executed.append(literal[0])
        elif _SHELL_CALLS.fullmatch(fn) and literal:
            facts.shell.append(literal[0])
        else:
            facts.args.extend(literal)
        if _NET_CALLS.fullmatch(fn) and fn not in ("dict.get", "os.environ.get"):
            facts.network = facts.network or not fn.endswith(".get") or "requests" in fn
    return facts


_PERL_SHELL = re.compile(r"""(?:system|exec|qx)\s*\(?\s*(['"{])(.*?)['"}]|`([^`]*)`""", re.S)
_PERL_B64 = re.compile(r"""decode_base64\s*\(\s*['"]([A-Za-z0-9+/=]+)['"]""")
_PERL_PRINT = re.compile(r"""\b(?:print|say|warn|die)\b[^;]*;?""")


def analyse_perl(code: str) -> tuple[list[str], str]:
    """(shell text a Perl/Ruby/Node payload runs, its code with output statements and comments
    removed): regex-level, these languages have no parser here."""
    code = code[:MAX_DECODE]
    shell = [m.group(2) or m.group(3) or "" for m in _PERL_SHELL.finditer(code)]
    if re.search(r"\b(system|exec|qx)\b|`", code):  # system(decode_base64("..."))
        for m in _PERL_B64.finditer(code):
            pad = m.group(1) + "=" * (-len(m.group(1)) % 4)
            try:
                decoded = as_text(base64.b64decode(pad))
            except (binascii.Error, ValueError):
                decoded = None
            if decoded:
                shell.append(decoded)
    rest = re.sub(r"(^|\s)#[^\n]*", " ", _PERL_PRINT.sub(" ", code))
    return [s for s in shell if s], rest
