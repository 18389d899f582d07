"""One reversible text form for every model-controlled value that reaches the evidence.

Host names, SNI, URLs, headers and file names come from the sandbox as bytes the model chose:
newlines, control characters, bidi overrides, invalid UTF-8. `escape_bytes` turns them into
printable text that can never break a line, a log, a JSON document or a report, and that maps
back to the exact bytes (`unescape`):

- `\\\\` is a backslash;
- `\\xNN` is the raw byte NN: an ASCII control character, or a byte that is not valid UTF-8;
- `\\uNNNN` / `\\UNNNNNNNN` is a code point that is valid UTF-8 but not printable (C1 controls,
  line and paragraph separators, format characters such as bidi overrides, non-ASCII spaces,
  unassigned code points) or is U+FFFD (which marks bytes someone else already replaced);
- every other character stands for itself (space included).

A value that begins with `attachment://` (how an Inspect log refers to a string it stores
elsewhere) has its first character escaped (`\\x61`), so it is never read as a reference to
other text. A value with nothing to escape is returned unchanged, so `escaped` (the second
result) says whether a reader must `unescape` it to get the raw bytes.
"""

from __future__ import annotations

import re

_SAFE = re.compile(r"(?!attachment://)[ -\[\]-~]*")  # printable ASCII without the backslash
_ATTACHMENT = "attachment://"
_ESCAPE = re.compile(r"\\(?:\\|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")


def escape_text(text: str) -> tuple[str, bool]:
    """`text` (a str from `bytes.decode("utf-8", "surrogateescape")` or `os.fsdecode`, whose lone
    surrogates U+DC80..U+DCFF stand for raw bytes) in escaped form, and whether it changed."""
    if _SAFE.fullmatch(text):
        return text, False
    out: list[str] = []
    for ch in text:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif 0xDC80 <= o <= 0xDCFF:  # surrogateescape: the raw byte o - 0xDC00
            out.append(f"\\x{o - 0xDC00:02x}")
        elif not ch.isprintable() or o == 0xFFFD:
            out.append(f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}")
        else:
            out.append(ch)
    escaped = "".join(out)
    if escaped.startswith(_ATTACHMENT):
        escaped = "\\x61" + escaped[1:]
    return escaped, escaped != text


def escape_bytes(raw: bytes) -> tuple[str, bool]:
    """Raw bytes in escaped form, and whether anything had to be escaped."""
    return escape_text(raw.decode("utf-8", "surrogateescape"))


def unescape(text: str) -> bytes:
    """The raw bytes an escaped value stands for (inverse of `escape_bytes`)."""
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(text):
        out += text[pos : m.start()].encode("utf-8", "surrogatepass")
        tok = m.group()
        if tok == "\\\\":
            out += b"\\"
        elif tok[1] == "x":
            out.append(int(tok[2:], 16))
        else:
            out += chr(int(tok[2:], 16)).encode("utf-8", "surrogatepass")
        pos = m.end()
    out += text[pos:].encode("utf-8", "surrogatepass")
    return bytes(out)


def printable(text: str) -> str:
    """Diagnostic text (e.g. a conformance mismatch quoting what a container reported) on one
    printable line: every character `escape_text` would escape except the backslash is, so
    applying it twice changes nothing (not reversible; for values that need their bytes back,
    use `escape_text`)."""
    if _SAFE.fullmatch(text) or text.isprintable():
        return text
    out: list[str] = []
    for ch in text:
        o = ord(ch)
        if o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif not ch.isprintable():
            out.append(f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}")
        else:
            out.append(ch)
    return "".join(out)
