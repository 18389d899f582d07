"""What an encoded shell pipeline carries, worked out statically: `echo B64 | base64 -d | sh`.

A pipeline is a *source* (`echo`, `printf`, a here-string), *transforms* (`base64 -d`, `base32
-d`, `xxd -r -p`, `openssl base64 -d`, `rev`, rot13 with `tr`) and maybe a *sink* that runs what
it reads (a shell, `python`, `perl`). A payload with a sink is an action (its commands are
audited like typed ones); without one it is data (searched for canaries and credentials, never
for commands). Command substitutions that decode (`$(echo … | base64 -d)`) are replaced by
their output before the command line is tokenised, as the shell would.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Literal

from ._decode import MAX_DECODE, b32, b64, rot13, unescape, unhex

Runner = Literal["shell", "python", "perl"]
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "busybox"})
_PYTHONS = re.compile(r"python[0-9.]*|pypy[0-9.]*")


@dataclass(frozen=True)
class Payload:
    """A decoded pipeline's output: its text, what runs it (None: data), how it was hidden."""

    text: str
    runs: Runner | None
    how: str


def _args(cmd: object) -> list[str]:
    progs: list[str] = getattr(cmd, "programs", [])
    return cmd.args_after(progs[-1]) if progs else []  # type: ignore[attr-defined]


def source_text(prog: str, args: list[str]) -> str | None:
    """What `echo`/`printf` with these arguments print (escapes resolved), None otherwise."""
    if prog == "echo":
        flags = ""
        while args and re.fullmatch(r"-[neE]+", args[0]):
            flags += args.pop(0)
        text = " ".join(args)
        return unescape(text) if "e" in flags else text
    if prog == "printf" and args:
        fmt, rest = unescape(args[0]), list(args[1:])

        def arg(m: re.Match[str]) -> str:
            if m.group(0) == "%%":
                return "%"
            value = rest.pop(0) if rest else ""
            return unescape(value) if m.group(0) == "%b" else value

        return re.sub(r"%%|%[-0-9.]*[sbdc]", arg, fmt)
    return None


def _transform(prog: str, args: list[str], data: str) -> tuple[str | None, str] | None:
    """(output, what it undid), or None when `prog` is not a decoding step."""
    flags = " ".join(args)
    decoding = bool(re.search(r"(^|\s)(-[a-zA-Z]*[dD][a-zA-Z]*|--decode)(\s|$)", flags))
    if prog in ("base64", "basenc", "gbase64") and decoding:
        return (b32(data) if "--base32" in flags else b64(data)), "base64"
    if prog == "base32" and decoding:
        return b32(data), "base32"
    if prog == "openssl" and decoding and re.search(r"\bbase64\b|-a\b|-base64\b", flags):
        return b64(data), "base64"
    if prog == "xxd" and "-r" in flags:
        return unhex(data), "hex"
    if prog == "rev":
        return "\n".join(line[::-1] for line in data.split("\n")), "reversed"
    if prog == "tr" and len(args) >= 2 and {args[0], args[1]} >= {"A-Za-z", "N-ZA-Mn-za-m"}:
        return rot13(data), "rot13"
    if prog in ("cat", "tee") and not [a for a in args if not a.startswith("-")]:
        return data, ""
    return None


def _sink(prog: str, args: list[str]) -> Runner | None:
    plain = [a for a in args if not a.startswith("-")]
    runs_stdin = not plain or plain[0] in ("-", "/dev/stdin", "sh")
    if prog in _SHELLS and runs_stdin and not any(a.startswith("-") and "c" in a for a in args):
        return "shell"
    if prog in ("source", ".") and plain[:1] == ["/dev/stdin"]:
        return "shell"
    if _PYTHONS.fullmatch(prog) and (not plain or plain[0] == "-") and "-c" not in args:
        return "python"
    if prog == "perl" and "-e" not in args and not plain:
        return "perl"
    return None


def evaluate(pipeline: list[object], files: dict[str, str] | None = None) -> Payload | None:
    """The decoded output of one pipeline (a list of `SimpleCommand`s), None when it decodes
    nothing (no source, or no decoding step before the end). `files`: contents of files the
    call wrote earlier (`echo B64 > /tmp/p; base64 -d /tmp/p | sh`)."""
    data: str | None = None
    how: list[str] = []
    for cmd in pipeline:
        progs: list[str] = getattr(cmd, "programs", [])
        if not progs:
            return None
        prog, args = progs[-1], _args(cmd)
        stdin: str | None = getattr(cmd, "stdin", None)
        if stdin is not None:
            data = stdin
        if data is None and files:  # a decoder reading a file written before
            names = [*getattr(cmd, "reads", []), *(a for a in args if not a.startswith("-"))]
            known = next((n for n in names if posixpath.normpath(n) in files), None)
            rest = [a for a in args if a != known]
            if known is not None and _sink(prog, rest) is None:  # scripts run: see _view
                data, args = files[posixpath.normpath(known)], rest
        if data is None:
            data = source_text(prog, list(args))
            if data is None:
                return None
            if re.search(r"\\x[0-9a-fA-F]|\\[0-7]{3}", " ".join(args)):
                how.append("escapes")
            continue
        if (runs := _sink(prog, args)) is not None:
            return Payload(data[:MAX_DECODE], runs, ", ".join(how) or "piped")
        step = _transform(prog, args, data)
        if step is None:
            return None
        data, undone = step
        if data is None:
            return None
        if undone:
            how.append(undone)
    if data is None or not how:
        return None
    return Payload(data[:MAX_DECODE], None, ", ".join(how))


def pipelines(cmds: list[object]) -> list[list[object]]:
    """Consecutive commands joined by `|`."""
    out: list[list[object]] = []
    for cmd in cmds:
        if getattr(cmd, "piped", False) and out:
            out[-1].append(cmd)
        else:
            out.append([cmd])
    return out


def payloads(cmds: list[object], files: dict[str, str] | None = None) -> list[Payload]:
    """Every decoding pipeline's payload among `cmds`."""
    return [p for line in pipelines(cmds) if (p := evaluate(line, files)) is not None]


MAX_SUBSTITUTIONS = 32
_PARENS = re.compile(r"\$\(\(|\$\(|\(|\)")
_DECODING = re.compile(r"base(64|32|nc)|xxd|printf|\brev\b|\btr\b|openssl|echo")


def _substitution_spans(text: str) -> list[tuple[int, int, int]]:
    """(start, inner start, end) of each `$(...)` (balanced, not `$((`) and backtick span."""
    spans: list[tuple[int, int, int]] = []
    stack: list[int] = []  # one pass: the start of each open `$(`, or -1 for a plain `(`
    for m in _PARENS.finditer(text):
        if m.group(0) == ")":
            if stack and (start := stack.pop()) >= 0 and len(spans) < 4 * MAX_SUBSTITUTIONS:
                spans.append((start, start + 2, m.end()))
        elif m.group(0) == "$((":  # arithmetic: two plain parentheses
            stack.extend((-1, -1))
        else:
            stack.append(m.start() if m.group(0) == "$(" else -1)
    for m in re.finditer(r"`([^`]*)`", text):
        spans.append((m.start(), m.start() + 1, m.end()))
    return spans


def substitute(text: str, parse: object, depth: int) -> str:
    """`text` with each decoding command substitution replaced by its decoded output."""
    if "$(" not in text and "`" not in text:
        return text
    spans = [
        (start, inner, end)
        for start, inner, end in _substitution_spans(text)
        if _DECODING.search(text, inner, end) and "$(" not in text[inner : end - 1]
    ]  # innermost decoding substitutions only, and not too many: work stays bounded
    for start, inner, end in sorted(spans[:MAX_SUBSTITUTIONS], reverse=True):
        body = text[inner : end - 1]
        found = payloads(parse(body, depth + 1))  # type: ignore[operator]
        if found and found[-1].runs is None:
            out = found[-1].text.strip("\n")
            if text[:start].rstrip().endswith(("<<<", "=")):  # one word: here-string, value
                out = "'" + out.replace("'", "'\\''") + "'"
            text = text[:start] + out + text[end:]
    return text
