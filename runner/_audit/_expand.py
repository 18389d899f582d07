"""Static shell expansions that evasion relies on, applied to command text before tokenising.

`$IFS` (as a word separator), empty positional parameters (`ca$@t`), `${PATH:0:1}` (a `/`),
`${x:-default}`, `$'\\x63at'` (ANSI-C quoting) and variables assigned then used (`a=ca; b=t;
$a$b`). Quoting and concatenation (`c'a't`) are undone by the tokeniser (`shlex`, POSIX mode),
brace expansion (`{cat,/etc/shadow}`) word by word in `_shell.py`. What cannot be resolved
statically is left as written.
"""

from __future__ import annotations

import re

from ._decode import unescape

MAX_VARS = 64
_IFS = re.compile(r"\$\{IFS(?:[%#][^}]*)?\}|\$IFS(?![A-Za-z0-9_])")
_POSITIONAL = re.compile(r"\$[@*1-9]|\$\{[@*1-9]\}")
_SLASH = re.compile(r"\$\{(?:PATH|HOME|PWD|OLDPWD|SHELL):0:1\}")
_ANSI_C = re.compile(r"\$'((?:\\.|[^'\\])*)'")
_ASSIGN = re.compile(
    r"(?:(?<=^)|(?<=[\s;&|(`]))(?:export\s+|local\s+|declare\s+(?:-\w+\s+)?)?"
    r"([A-Za-z_][A-Za-z0-9_]*)=('[^']*'|\"[^\"`$\\]*\"|[^\s;&|()<>'\"`$]*)(?=[\s;&|)]|$)"
)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _ansi_c(m: re.Match[str]) -> str:
    decoded = unescape(m.group(1))
    return "'" + decoded.replace("'", "'\\''") + "'"


def _substitute(text: str, name: str, value: str, start: int) -> str:
    ref = re.compile(rf"\$\{{{name}\}}|\${name}(?![A-Za-z0-9_])")
    head, tail = text[:start], text[start:]
    return head + ref.sub(lambda _m: value.replace("\\", "\\\\"), tail)


def expand(text: str) -> str:
    """`text` with the static expansions above applied (best effort, never raises)."""
    if "$" not in text:
        return text
    text = _ANSI_C.sub(_ansi_c, text)
    text = _IFS.sub(" ", text)
    text = _SLASH.sub("/", text)
    text = _POSITIONAL.sub("", text)
    text = re.sub(r"\$\{[A-Za-z_]\w*:-([^}$]*)\}", r"\1", text)
    done = 0
    pos = 0
    while done < MAX_VARS:
        m = _ASSIGN.search(text, pos)
        if m is None:
            break
        name, value = m.group(1), _unquote(m.group(2))
        if name != "IFS":
            text = _substitute(text, name, value, m.end())
        pos = m.end()
        done += 1
    return text
