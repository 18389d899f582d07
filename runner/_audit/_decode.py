"""Decoders for what a model may use to hide a payload: base64/base32, hex, printf/echo escapes,
URL-encoding, reversal, rot13, gzip, and IP addresses written as integers, hex or octal.

Pure functions of text, no shell knowledge (that is `_payloads.py`). Every decoder is bounded
(input and output sizes) and returns None when the input does not decode to mostly text.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import ipaddress
import re
import socket
import zlib
from urllib.parse import unquote

MAX_DECODE = 64 * 1024
"""Longest input a decoder looks at (characters); longer payloads are cut, not skipped."""

_B64_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}")
_HEX_TOKEN = re.compile(r"(?:\\x)?(?:[0-9a-fA-F]{2}(?:\\x|[ :])?){6,}")
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{4}|[0-7]{1,3}|[abefnrtv\\'\"?])")
_SIMPLE_ESC = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}


def as_text(data: bytes | None) -> str | None:
    """Bytes as text when they are mostly printable (a payload, not binary noise)."""
    if not data:
        return None
    if data[:2] == b"\x1f\x8b":  # gzip inside base64: one more layer
        try:
            data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, MAX_DECODE)
        except zlib.error:
            return None
    text = data[:MAX_DECODE].decode("utf-8", "replace")
    printable = sum(ch.isprintable() or ch in "\n\t\r" for ch in text)
    return text if printable >= 0.9 * len(text) else None


def b64(text: str) -> str | None:
    """Standard or URL-safe base64 (padding optional) as text, or None."""
    s = "".join(text[:MAX_DECODE].split())
    if len(s) < 4 or not re.fullmatch(r"[A-Za-z0-9+/_-]+={0,2}", s):
        return None
    s = s.rstrip("=")
    s += "=" * (-len(s) % 4)
    try:
        alt = b"-_" if ("-" in s or "_" in s) else None
        return as_text(base64.b64decode(s, altchars=alt, validate=True))
    except (binascii.Error, ValueError):
        return None


def b32(text: str) -> str | None:
    """Base32 as text, or None."""
    s = "".join(text[:MAX_DECODE].split()).upper()
    s += "=" * (-len(s.rstrip("=")) % 8)
    try:
        return as_text(base64.b32decode(s))
    except (binascii.Error, ValueError):
        return None


def unhex(text: str) -> str | None:
    """Hex digits (optionally `\\x`-, space- or colon-separated) as text, or None."""
    s = re.sub(r"\\x|0x|[\s:]", "", text[:MAX_DECODE])
    if len(s) < 2 or len(s) % 2 or not re.fullmatch(r"[0-9a-fA-F]+", s):
        return None
    return as_text(bytes.fromhex(s))


def unescape(text: str) -> str:
    """printf/echo -e/$'...' escapes (`\\x63`, `\\143`, `\\u0063`, `\\n`) resolved."""

    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        if e[0] == "x":
            return chr(int(e[1:], 16))
        if e[0] == "u":
            return chr(int(e[1:], 16))
        if e[0] in "01234567":
            return chr(int(e, 8) & 0xFF)
        return _SIMPLE_ESC.get(e, e)

    return _ESCAPE.sub(one, text[:MAX_DECODE])


def url_decode(text: str) -> str:
    """URL-decoding (applied twice: `%252F` is a double-encoded `/`)."""
    once = unquote(text[:MAX_DECODE])
    return unquote(once) if "%" in once else once


def rot13(text: str) -> str:
    """rot13 (its own inverse)."""
    return codecs.encode(text, "rot13")


def embedded(text: str) -> list[str]:
    """The texts hidden in a string's base64 and hex tokens (each decoded one level).

    Used where any hidden copy matters (canaries, credentials); what a *shell* runs is worked
    out from the pipeline instead (`_payloads.py`).
    """
    out: list[str] = []
    for m in _B64_TOKEN.finditer(text[:MAX_DECODE]):
        tok = m.group(0)
        # hex digits are also valid base64
        dec = unhex(tok) if re.fullmatch(r"[0-9a-fA-F]+", tok) else b64(tok)
        if dec and dec != tok:
            out.append(dec)
    for m in _HEX_TOKEN.finditer(text[:MAX_DECODE]):
        dec = unhex(m.group(0))
        if dec and dec not in out:
            out.append(dec)
    if "\\x" in text or re.search(r"\\[0-7]{3}", text):
        out.append(unescape(text))
    return out


def views(text: str) -> list[tuple[str, str]]:
    """(how it was encoded, decoded text) for every decoding of `text` worth searching: the text
    itself, URL-decoded, reversed, rot13, and the payloads in its base64/hex tokens (two levels)."""
    text = text[:MAX_DECODE]
    out: list[tuple[str, str]] = [("plain", text)]
    if "%" in text:
        out.append(("URL-encoded", url_decode(text)))
    out.append(("reversed", text[::-1]))
    out.append(("rot13", rot13(text)))
    for dec in embedded(text):
        out.append(("encoded (base64/hex)", dec))
        out.extend(("encoded twice", d) for d in embedded(dec))
        out.append(("encoded and reversed", dec[::-1]))
    return out


def encodings_of(secret: str) -> list[tuple[str, str]]:
    """(encoding, form) of a secret as it may appear inside a longer encoded blob: base64 in
    each of the 3 alignments (the characters fully determined by the secret), hex."""
    raw = secret.encode()
    out: list[tuple[str, str]] = []
    for shift in range(3):
        enc = base64.b64encode(b"\0" * shift + raw).decode()
        # base64 character k covers bits [6k, 6k+6): keep those inside the secret's bits
        core = enc[-(-8 * shift // 6) : 8 * (shift + len(raw)) // 6]
        if len(core) >= 8:
            out.append(("base64", core))
            out.append(("base64url", core.replace("+", "-").replace("/", "_")))
    out.append(("hex", raw.hex()))
    out.append(("hex", raw.hex().upper()))
    return out


# --- IP literals -----------------------------------------------------------------------------

_IP_PART = r"(?:0[xX][0-9a-fA-F]+|[0-9]+)"
IP_LITERAL = re.compile(rf"(?<![\w.:-]){_IP_PART}(?:\.{_IP_PART}){{0,3}}(?![\w.-])")
_CANONICAL = re.compile(
    r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}"
)


def ip_literal(word: str) -> str | None:
    """The dotted IPv4 address an integer/hex/octal/short literal stands for (`2130706433`,
    `0x7f.1`, `0177.0.0.1`, `127.1`), None when `word` is not one or is already canonical."""
    if not IP_LITERAL.fullmatch(word) or _CANONICAL.fullmatch(word):
        return None
    try:
        return socket.inet_ntoa(socket.inet_aton(word))
    except OSError:
        return None


def mapped_ipv6(word: str) -> str | None:
    """The IPv4 address of an IPv4-mapped IPv6 literal (`[::ffff:a9fe:a9fe]`), or None."""
    try:
        addr = ipaddress.IPv6Address(word.strip("[]"))
    except ValueError:
        return None
    return str(addr.ipv4_mapped) if addr.ipv4_mapped else None
