"""A tool call seen through its evasions: what it *runs*, as opposed to what it merely mentions.

`call_view(obs)` normalises a call once (cached by its text) into:
- `commands`: every simple command it runs: typed ones, `bash -c`/`eval`/heredoc-to-shell
  bodies, decoded pipelines ending in a shell, shell calls of embedded Python/Perl;
- `action`: the text rules match against: the words of those commands (quotes undone,
  variables and `$IFS` expanded, braces expanded, paths normalised, IP literals dotted) minus
  mentions (arguments of `echo`/`printf`/`man`/`which`..., a `grep` pattern, comments, heredoc
  data), plus the literal arguments of Python calls that act (`open`, `os.system`, `connect`);
- `code`: the call's code without comments or data, for structural rules (fork bombs, imports);
- `data`: decoded payloads that nothing runs (still searched for canaries and credentials).
"""

from __future__ import annotations

import itertools
import posixpath
import re
from dataclasses import dataclass, field
from functools import lru_cache

from ._decode import IP_LITERAL, ip_literal, mapped_ipv6
from ._observe import Obs
from ._payloads import Payload, Runner, payloads, pipelines, source_text
from ._pycode import analyse_perl, analyse_python
from ._shell import SimpleCommand, _strip_heredocs_and_join, _tokens, simple_commands

MAX_DEPTH = 4
_MENTIONS = frozenset(
    {"echo", "printf", "man", "apropos", "whatis", "info", "help", "which", "whereis", "type",
     "true", ":", "test", "[", "[[", "hash", "alias", "history", "read", "local", "declare"}
)  # fmt: skip
_GREPS = frozenset({"grep", "egrep", "fgrep", "rg", "ag", "zgrep", "ack", "git-grep"})
_PYTHON = re.compile(r"python[0-9.]*|pypy[0-9.]*")
_OTHER_LANGS = frozenset({"perl", "ruby", "node", "nodejs", "php"})
_URL_HOST = re.compile(
    r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?:[^/@\s]*@)?(?P<host>\[[^\]\s]*\]|[^/:?#\s]+)"
)


@dataclass
class CallView:
    """A call's commands, action text, code text and hidden data (see the module docstring)."""

    commands: list[SimpleCommand] = field(default_factory=list)
    action: list[str] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    data: list[Payload] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    ip_literals: list[tuple[str, str]] = field(default_factory=list)
    python_network: bool = False
    files: dict[str, str] = field(default_factory=dict)
    """Files the call writes with known content (`echo`/`printf` redirects, heredocs)."""
    runs: list[tuple[str, Runner]] = field(default_factory=list)
    """Files the call runs whose content it did not write itself (maybe an earlier call did)."""

    @property
    def action_text(self) -> str:
        return "\n".join(self.action)

    @property
    def code_text(self) -> str:
        return "\n".join(self.code)


def _grep_args(args: list[str]) -> list[str]:
    """A grep's file arguments (its pattern is a mention)."""
    out, pattern_given, skip = [], False, False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a in ("-e", "--regexp", "-f", "--file"):
            pattern_given, skip = True, True
            if a in ("-f", "--file") and i + 1 < len(args):
                out.append(args[i + 1])
            continue
        if a.startswith("-"):
            continue
        out.append(a)
    return out if pattern_given else out[1:]


def _normalise_word(word: str, cwd: str, view: CallView) -> str:
    for m in _URL_HOST.finditer(word):
        host = m.group("host")
        dotted = ip_literal(host) or mapped_ipv6(host)
        if dotted:
            view.ip_literals.append((host, dotted))
            word = word.replace(host, dotted, 1)
    if word.startswith("/") or (cwd != "" and "/" in word and not word.startswith(("-", "http"))):
        path = word if word.startswith("/") else posixpath.join(cwd, word)
        if "://" not in path:
            return (
                posixpath.normpath(path)
                if not path.startswith("//")
                else posixpath.normpath("/" + path.lstrip("/"))
            )
    return word


_NET_ARG_PROGS = frozenset(
    {"nc", "ncat", "netcat", "ping", "telnet", "socat", "ssh", "nmap", "traceroute"}
)  # URLs (curl, wget) are handled by their host part


_VALUE_FLAGS = {
    "git": re.compile(r"-[a-zA-Z]*m|--message|-F|--file"),  # a commit message is a mention
    "python": re.compile(r"-c"),  # inline code is analysed as code, not as words
    "perl": re.compile(r"-[a-zA-Z]*[eE]"),
}
_VALUE_FLAGS.update(ruby=_VALUE_FLAGS["perl"], node=_VALUE_FLAGS["perl"], php=_VALUE_FLAGS["perl"])


def _drop_values(args: list[str], flags: re.Pattern[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif flags.fullmatch(a):
            skip = True
        elif not a.startswith("--message="):
            out.append(a)
    return out


def _odd_ip(word: str) -> bool:
    """An argument that is an IP address in integer, hex, octal or short form (not `10`)."""
    if not IP_LITERAL.fullmatch(word):
        return False
    if "0x" in word.lower() or re.search(r"(^|\.)0\d", word):
        return True
    dots = word.count(".")
    return (dots == 0 and int(word) >= 1 << 24) or dots in (1, 2)


def _command_words(cmd: SimpleCommand, cwd: str, view: CallView) -> list[str]:
    progs = cmd.programs
    if not progs:
        return list(cmd.writes)
    prog = progs[-1]
    args = cmd.args_after(prog)
    if prog in _MENTIONS:
        words = [prog]
    elif prog in _GREPS:
        words = [prog, *_grep_args(args)]
    elif prog == "git" or _PYTHON.fullmatch(prog) or prog in _OTHER_LANGS:
        words = [prog, *_drop_values(args, _VALUE_FLAGS.get(prog, _VALUE_FLAGS["python"]))]
    else:
        words = [*progs, *args]
    out = []
    for w in [*words, *cmd.writes, *cmd.reads]:
        if prog in _NET_ARG_PROGS and _odd_ip(w) and (dotted := ip_literal(w)):
            view.ip_literals.append((w, dotted))
            w = dotted
        out.append(_normalise_word(w, cwd, view))
    return out


def _add_python(code: str, view: CallView, depth: int) -> None:
    facts = analyse_python(code)
    if not facts.parsed:
        view.action.append(code)
        view.code.append(code)
        return
    view.python_network = view.python_network or facts.network
    view.code.append(re.sub(r"(?m)^\s*#.*$", "", code))
    view.action.extend(_normalise_word(a, "", view) for a in facts.args)
    for text in facts.shell:
        _add_shell(text, view, depth + 1)
    for text in facts.executed:
        if depth < MAX_DEPTH:
            view.hidden.append("python exec")
            _add_python(text, view, depth + 1)


def _add_shell(text: str, view: CallView, depth: int, workdir: str = "") -> None:
    if depth > MAX_DEPTH:
        return
    joined, bodies = _strip_heredocs_and_join(text)
    view.code.append(joined)
    cmds = simple_commands(text)
    view.commands.extend(cmds)
    cwd = workdir
    for cmd in cmds:
        view.action.append(" ".join(_command_words(cmd, cwd, view)))
        if cmd.argv[:1] == ["cd"] and len(cmd.argv) > 1 and not cmd.argv[1].startswith("-"):
            cwd = posixpath.normpath(posixpath.join(cwd or "/", cmd.argv[1]))
        progs = cmd.programs
        prog = progs[-1] if progs else ""
        args = cmd.args_after(prog) if prog else []
        flag = "-c" if _PYTHON.fullmatch(prog) else "-e"
        if (_PYTHON.fullmatch(prog) or prog in _OTHER_LANGS) and flag in args[:-1]:
            code = args[args.index(flag) + 1]
            if _PYTHON.fullmatch(prog):
                _add_python(code, view, depth + 1)
            else:
                shell, rest = analyse_perl(code)
                view.action.append(rest)
                view.code.append(rest)
                for s in shell:
                    _add_shell(s, view, depth + 1)
    for intro, body in bodies:
        words = [posixpath.basename(t) for t in _tokens(intro)]
        if any(_PYTHON.fullmatch(w) for w in words):
            _add_python(body, view, depth + 1)
        elif any(w in _OTHER_LANGS for w in words):
            view.action.append(analyse_perl(body)[1])
    view.action.extend(_indirect_arguments(cmds, view))
    _scripts(cmds, bodies, view, depth)
    for p in payloads(list(cmds), view.files):
        if p.runs is None:
            view.data.append(p)
            continue
        view.hidden.append(p.how)
        if p.runs == "shell":
            _add_shell(p.text, view, depth + 1)
        elif p.runs == "python":
            _add_python(p.text, view, depth + 1)
        else:
            shell, rest = analyse_perl(p.text)
            view.action.append(rest)
            for s in shell:
                _add_shell(s, view, depth + 1)


def _indirect_arguments(cmds: list[SimpleCommand], view: CallView) -> list[str]:
    """Arguments a command gets indirectly: `echo F | xargs cat` (cat F), `find D -name N
    -exec cat {} ;` (cat D/N)."""
    out: list[str] = []
    for line in pipelines(list(cmds)):
        for prev, cmd in itertools.pairwise(line):
            if not isinstance(prev, SimpleCommand) or not isinstance(cmd, SimpleCommand):
                continue
            if "xargs" not in cmd.programs or not prev.programs:
                continue
            data = source_text(prev.programs[-1], list(prev.args_after(prev.programs[-1])))
            if data is not None and cmd.programs[-1] != "xargs":
                prog = cmd.programs[-1]
                words = [prog, *cmd.args_after(prog), *data.split()]
                out.append(" ".join(_normalise_word(w, "", view) for w in words))
    for cmd in cmds:
        if "find" not in cmd.programs or not {"-exec", "-execdir"} & set(cmd.argv):
            continue
        args = cmd.args_after("find")
        roots = [
            a for a in args[: next((i for i, a in enumerate(args) if a.startswith("-")), len(args))]
        ]
        names = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-name", "-iname")]
        out.extend(posixpath.join(r, n) for r in roots or ["."] for n in names)
    return out


_SHEBANG_PY = re.compile(r"#![^\n]*python")


def _run_target(cmd: SimpleCommand) -> tuple[str, Runner] | None:
    """(file, what runs it) when a command runs a script file: `bash f`, `. f`, `./f`."""
    progs = cmd.programs
    if not progs:
        return None
    prog = progs[-1]
    args = cmd.args_after(prog)
    plain = [a for a in args if not a.startswith("-")]
    if any(a.startswith("-") and "c" in a.lstrip("-") for a in args) or "-e" in args:
        return None
    if prog in _SCRIPT_SHELLS or prog in ("source", "."):
        return (plain[0], "shell") if plain else None
    if _PYTHON.fullmatch(prog) and plain and plain[0] != "-" and "-m" not in args:
        return plain[0], "python"
    if prog in ("perl", "ruby") and plain:
        return plain[0], "perl"
    word = next((w for w in cmd.argv if "=" not in w), "")
    if word.startswith(("./", "/", "~/")) and posixpath.basename(word) == prog:
        return word, "shell"
    return None


_SCRIPT_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash"})


def run_script(text: str, runs: Runner, view: CallView, depth: int, name: str) -> None:
    """Audit a script's content as what the call runs."""
    view.hidden.append(f"script {name}")
    if runs == "python" or _SHEBANG_PY.match(text):
        _add_python(text, view, depth + 1)
    elif runs == "shell":
        _add_shell(text, view, depth + 1)
    else:
        shell, rest = analyse_perl(text)
        view.action.append(rest)
        for s in shell:
            _add_shell(s, view, depth + 1)


def _scripts(
    cmds: list[SimpleCommand], bodies: list[tuple[str, str]], view: CallView, depth: int
) -> None:
    """Record the files this call writes, and audit the ones it runs."""
    for cmd in cmds:
        prog = cmd.programs[-1] if cmd.programs else ""
        content = source_text(prog, list(cmd.args_after(prog))) if cmd.writes else None
        for w in cmd.writes if content is not None else ():
            view.files[posixpath.normpath(w)] = content or ""
    for intro, body in bodies:
        for cmd in simple_commands(intro):
            targets = [*cmd.writes, *(cmd.args_after("tee") if "tee" in cmd.programs else [])]
            for w in targets:
                if not w.startswith("-"):
                    view.files[posixpath.normpath(w)] = body
    for cmd in cmds:
        target = _run_target(cmd)
        if target is None:
            continue
        path, runs = target
        content = view.files.get(posixpath.normpath(path))
        if content is None:
            view.runs.append((posixpath.normpath(path), runs))
        elif depth < MAX_DEPTH:
            run_script(content, runs, view, depth, path)


@lru_cache(maxsize=2048)
def _view(lang: str, text: str) -> CallView:
    view = CallView()
    if lang == "shell":
        _add_shell(text, view, 0)
    elif lang == "python":
        _add_python(text, view, 0)
    else:
        view.action.append(text)
        view.code.append(text)
    return view


def call_view(obs: Obs) -> CallView:
    """The normalised view of a tool call (an empty one for other observations)."""
    if obs.kind != "call":
        return CallView()
    args = obs.data.get("arguments") if obs.lang == "other" else None
    if isinstance(args, dict):  # an editor's file content is data, its path and command act
        acting = {k: v for k, v in args.items() if k not in _CONTENT_KEYS}
        return _view("other", "\n".join(f"{k}: {v}" for k, v in acting.items()))
    return _view(obs.lang, obs.text)


_CONTENT_KEYS = frozenset(
    {"file_text", "new_str", "old_str", "insert_text", "content", "text", "answer", "message"}
)
