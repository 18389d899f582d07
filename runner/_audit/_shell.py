"""Light shell tokenisation: split a command string into simple commands, argv and redirects.

Not a shell parser: enough to tell `curl x` (a command) from `echo "curl x"` (an argument) or a
heredoc body (data), which keeps command rules free of false positives on ordinary transcripts.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from functools import cached_property

from ._expand import expand

_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")
_SEPARATORS = frozenset({";", "&", "|", "&&", "||", "(", ")", ";;", "|&", "{", "}"})
_HEREDOC = re.compile(r"(?<!<)<<-?(?!<)\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
_WRAPPERS = frozenset(
    {
        "sudo",
        "doas",
        "env",
        "nohup",
        "nice",
        "ionice",
        "timeout",
        "time",
        "command",
        "exec",
        "xargs",
        "stdbuf",
        "setsid",
        "builtin",
        "watch",
        "busybox",
        "strace",
        "chroot",
        "su",
    }
)
_VALUE_OPTIONS = {
    "sudo": {"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U"},
    "doas": {"-u", "-C"},
    "nice": {"-n"},
    "ionice": {"-c", "-n", "-p"},
    "timeout": {"-s", "-k"},
    "env": {"-u", "-C", "-S"},
    "xargs": {"-I", "-n", "-P", "-d", "-L", "-s", "-E", "-a"},
    "su": {"-s", "-g", "-G", "-c"},
    "watch": {"-n", "-d"},
    "strace": {"-o", "-e", "-p", "-s"},
}
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash"})


def _basename(word: str) -> str:
    return word.rstrip("/").rsplit("/", 1)[-1] or word


@dataclass
class SimpleCommand:
    """One simple command: its words and the files it redirects output to."""

    argv: list[str]
    writes: list[str] = field(default_factory=list)
    piped: bool = False
    """Reads the previous command's output (`a | b`: b is piped)."""
    stdin: str | None = None
    """A here-string's text (`cmd <<< text`)."""
    reads: list[str] = field(default_factory=list)
    """Files redirected into it (`cmd < file`)."""

    @cached_property
    def programs(self) -> list[str]:
        """Program names this command runs: argv[0] and what a wrapper (sudo, env...) runs."""
        names: list[str] = []
        args = list(self.argv)
        while args:
            while args and _ASSIGNMENT.fullmatch(args[0]):
                args.pop(0)
            if not args:
                break
            name = _basename(args[0])
            names.append(name)
            if name == "find":  # find -exec PROGRAM ...
                names.extend(
                    _basename(args[k + 1])
                    for k in range(len(args) - 1)
                    if args[k] in ("-exec", "-execdir", "-ok", "-okdir")
                )
            if name not in _WRAPPERS:
                break
            args.pop(0)
            # skip the wrapper's options (and a duration for `timeout`, a directory for chroot)
            takes_value = _VALUE_OPTIONS.get(name, set())
            while args and (args[0].startswith("-") or re.fullmatch(r"[0-9.]+[smhd]?", args[0])):
                opt = args.pop(0)
                if opt in takes_value and args:
                    args.pop(0)
            if name == "chroot" and args:
                args.pop(0)
        return names

    def args_after(self, program: str) -> list[str]:
        """The words after `program` (its arguments)."""
        for i, word in enumerate(self.argv):
            if _basename(word) == program:
                return self.argv[i + 1 :]
        return []


_PLAIN = re.compile(r"[^\\'\"#\n`]+")
_IN_QUOTE = {"'": re.compile(r"[^']+"), '"': re.compile(r'[^"\\]+')}


def _strip_heredocs_and_join(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Turn unquoted newlines into `;` and take heredoc bodies out (they are data, unless a
    shell reads them): the joined text, and (line that opened it, body) of each heredoc."""
    out: list[str] = []
    bodies: list[tuple[str, str]] = []
    quote = ""
    pending: list[str] = []
    i, n = 0, len(text)
    line_start = 0
    while i < n:
        plain = (_IN_QUOTE[quote] if quote else _PLAIN).match(text, i)
        if plain is not None:  # a run of ordinary characters at once
            out.append(plain.group(0))
            i = plain.end()
            continue
        c = text[i]
        if quote:
            if c == "\\" and quote == '"' and i + 1 < n:
                out.append(text[i : i + 2])
                i += 2
                continue
            if c == quote:
                quote = ""
            out.append(c)
        elif c == "\\" and i + 1 < n:
            out.append(" " if text[i + 1] == "\n" else text[i : i + 2])
            i += 2
            continue
        elif c in "'\"":
            quote = c
            out.append(c)
        elif c == "#" and (i == 0 or text[i - 1] in " \t\n;&|("):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif c == "\n":
            intro = text[line_start:i]
            pending.extend(m.group(2) for m in _HEREDOC.finditer(intro))
            out.append(" ; ")
            i += 1
            body: list[str] = []
            while pending and i < n:  # skip heredoc bodies up to their terminators
                j = text.find("\n", i)
                line = text[i : n if j < 0 else j]
                i = n if j < 0 else j + 1
                if line.strip() == pending[0]:
                    pending.pop(0)
                    bodies.append((intro, "\n".join(body)))
                    body = []
                else:
                    body.append(line)
            if body:
                bodies.append((intro, "\n".join(body)))
            line_start = i
            continue
        elif c == "`":
            out.append(" ; ")
        else:
            out.append(c)
        i += 1
    return "".join(out), bodies


_BRACE = re.compile(r"\{([^{}\s]*,[^{}\s]*)\}")
MAX_BRACE_WORDS = 64


def brace_expand(word: str) -> list[str]:
    """Bash brace expansion of one word (`{cat,/etc/shadow}`, `/etc/{passwd,shadow}`)."""
    m = _BRACE.search(word)
    if m is None or word.startswith("${"):
        return [word]
    out: list[str] = []
    for alt in m.group(1).split(","):
        out.extend(brace_expand(word[: m.start()] + alt + word[m.end() :]))
        if len(out) >= MAX_BRACE_WORDS:
            break
    return [w for w in out if w][:MAX_BRACE_WORDS]


_LONG_RUN = re.compile(
    r"[A-Za-z0-9+/=_.,:%@-]{4096,}|(?<=')[^']{4096,}(?=')|(?<=\")[^\"\\$`]{4096,}(?=\")"
)
"""Runs of word characters (base64, hex) or quoted text this long are data: `shlex` is
quadratic in a token's length, so they are set aside while tokenising and put back after."""


def _tokens(text: str) -> list[str]:
    runs: list[str] = []

    def hold(m: re.Match[str]) -> str:
        runs.append(m.group(0))
        return f"\x00{len(runs) - 1}\x00"

    if len(text) >= 4096:
        text = _LONG_RUN.sub(hold, text)
    lex = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>")
    lex.whitespace_split = True
    lex.commenters = ""
    try:
        tokens = list(lex)
    except ValueError:  # unbalanced quotes: fall back to words
        tokens = text.replace(";", " ; ").split()
    if runs:
        tokens = [re.sub(r"\x00(\d+)\x00", lambda m: runs[int(m.group(1))], t) for t in tokens]
    return tokens


def simple_commands(text: str, _depth: int = 0) -> list[SimpleCommand]:
    """The simple commands in a shell command string, recursing into `bash -c '...'`."""
    result: list[SimpleCommand] = []
    current = SimpleCommand(argv=[])
    redirect: str | None = None
    from ._payloads import substitute  # it parses what it substitutes with this module

    if _depth > 3:
        return []
    joined, bodies = _strip_heredocs_and_join(expand(substitute(text, simple_commands, _depth)))
    for tok in _tokens(joined):
        if redirect is not None:
            if redirect == "<<<":
                current.stdin = tok
            elif ">" in redirect:
                current.writes.append(tok)
            elif redirect == "<":
                current.reads.append(tok)
            redirect = None
            continue
        if tok in _SEPARATORS or (tok and set(tok) <= set(";&|()")):
            if current.argv or current.writes:
                result.append(current)
            current = SimpleCommand(argv=[], piped=tok in ("|", "|&"))
            continue
        if tok and set(tok) <= set("<>&|") and ("<" in tok or ">" in tok):
            redirect = tok
            continue
        if tok.startswith("$") and tok != "$":
            tok = tok.lstrip("$")
        if tok == "$":
            continue
        current.argv.extend(brace_expand(tok))
    if current.argv or current.writes:
        result.append(current)
    if _depth < 3:
        for intro, body in bodies:  # `bash <<EOF` runs its heredoc
            if any(_basename(t) in _SHELLS for t in _tokens(intro)):
                result.extend(simple_commands(body, _depth + 1))
        for cmd in list(result):
            progs = cmd.programs
            if progs and progs[-1] == "eval":
                result.extend(simple_commands(" ".join(cmd.args_after("eval")), _depth + 1))
                continue
            if progs and (progs[-1] in _SHELLS or progs[-1] == "su"):
                args = cmd.args_after(progs[-1])
                for j, a in enumerate(args[:-1]):
                    if a.startswith("-") and "c" in a and not a.startswith("--"):
                        result.extend(simple_commands(args[j + 1], _depth + 1))
                        break
    return result
