"""The egress proxy's access log: the format squid writes, and its strict parser.

Every field the sandbox controls (method, requested host, URL, TLS SNI, Host header, user agent)
is written by squid with its `%#` URL encoding, so a field can never hold a space, a newline or
any byte outside printable ASCII, and `%` itself is encoded: each line decodes to exactly the
bytes squid saw. Squid's own fields are numbers and tags. Each line also carries a per-proxy
random mark (the sandbox never sees the proxy's configuration) and squid's log sequence number
(`%sn`, from 0), so a line that was injected, lost or reordered shows.

`parse_access_log` accepts a line only if every field matches its pattern exactly; anything else
is *rejected*, counted and kept (escaped, bounded) for the audit, which reports it as an
integrity finding. Decoded values are stored in `_escape`'s reversible printable form.
`read_proxy_log` reads it back from the proxy container's Docker log, whose size tierlock caps
(`proxy_log_options`, checked by the sidecar conformance check).
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from ._docker import run_sync
from ._escape import escape_bytes, escape_text
from ._evidence import ProxyLog, ProxyRequest

if TYPE_CHECKING:
    import docker

LOG_MARK = "TIERLOCK"
"""Prefix of every access-log line's mark (`TIERLOCK-<random>`, see `new_log_mark`)."""

FIELD_WIDTHS = {
    "method": 40,
    "host": 300,
    "err": 100,
    "bump": 20,
    "sni": 1000,
    "host_header": 600,
    "user_agent": 1500,
    "url": 3500,
}
"""Most characters squid writes of each encoded field (after encoding). squid 5.7 cuts a whole
log line at 8191 bytes, which would lose the line's last fields; these widths keep every line
under it, and a field that reaches its width is recorded as cut (`ProxyRequest.cut`)."""
_W = FIELD_WIDTHS
LOG_FIELDS = (
    f"%sn %ts.%03tu %#.{_W['method']}rm %#.{_W['host']}>rd %>rP %Ss %>Hs %>st %<st "
    f"%#.{_W['err']}err_code %#.{_W['bump']}ssl::bump_mode %#.{_W['sni']}ssl::>sni "
    f"%#.{_W['host_header']}{{Host}}>h %#.{_W['user_agent']}{{User-Agent}}>h %#.{_W['url']}ru"
)
"""sequence time method host port result status request-bytes reply-bytes error bump-mode sni
host-header user-agent url (after the mark)."""

PROXY_LOG_MAX_BYTES = 8 * 1024**2
"""At most this much of the proxy's request log is read: its first and last halves. The rest
is counted (`ProxyLog.dropped`) and the log marked `truncated`, never held in memory."""
PROXY_LOG_FILE_SIZE = "16m"
PROXY_LOG_FILES = 2
"""Docker keeps at most this many files of this size of the proxy's log (set by tierlock, never
a daemon default). Lines rotated away are counted by their sequence numbers (`ProxyLog.missing`)
and reported by the audit."""
MAX_REJECTED_KEPT = 10
"""Rejected lines kept verbatim (escaped) in the evidence; the rest are only counted."""
MAX_REJECTED_CHARS = 400

# squid's %# output: printable ASCII without space in the line pattern, and every "%" starts
# an escape %XX (`_ESCAPES`); a field cut at its width may end in a partial escape ("%", "%4")
_ENC = r"[!-~]+"
_ESCAPES = re.compile(r"(?:[^%]|%[0-9A-Fa-f]{2})*")
_PARTIAL = re.compile(r"%[0-9A-Fa-f]?\Z")
_NUM = r"\d+|-"
_LINE = re.compile(
    r"(?P<mark>\S+) (?P<seq>\d+) (?P<ts>\d+\.\d{3}) "
    rf"(?P<method>{_ENC}) (?P<host>{_ENC}) (?P<port>{_NUM}) (?P<result>[A-Z0-9_]+|-) "
    rf"(?P<status>{_NUM}) (?P<req>{_NUM}) (?P<reply>{_NUM}) (?P<err>{_ENC}) (?P<bump>{_ENC}) "
    rf"(?P<sni>{_ENC}) (?P<host_header>{_ENC}) (?P<user_agent>{_ENC}) (?P<url>{_ENC})"
)

_REFUSED_ERRORS = ("ERR_ACCESS_DENIED", "ERR_INVALID", "ERR_UNSUP", "ERR_PROTOCOL")
"""Squid errors for requests that never went out (refused or unparseable)."""


def proxy_log_options() -> dict[str, str]:
    """The proxy container's json-file log options: capped, and never dropping lines."""
    return {"max-size": PROXY_LOG_FILE_SIZE, "max-file": str(PROXY_LOG_FILES), "mode": "blocking"}


def check_proxy_log_config(host_config: dict[str, Any]) -> list[str]:
    """Mismatches of the proxy container's `HostConfig.LogConfig` with `proxy_log_options`."""
    conf = host_config.get("LogConfig") or {}
    opts = conf.get("Config") or {}
    bad = [] if conf.get("Type") == "json-file" else [f"log driver is {conf.get('Type')!r}"]
    for key, want in proxy_log_options().items():
        if opts.get(key) != want:
            bad.append(f"log option {key} is {opts.get(key)!r}, want {want!r}")
    return bad


def new_log_mark() -> str:
    """A fresh mark for one proxy's log lines."""
    return f"{LOG_MARK}-{secrets.token_hex(8)}"


def log_format(mark: str) -> str:
    """The squid `logformat` body for lines marked `mark`."""
    return f"{mark} {LOG_FIELDS}"


@dataclass
class AccessLog:
    """What `parse_access_log` read."""

    requests: list[ProxyRequest] = field(default_factory=list)
    rejected: int = 0
    """Lines that did not match the format exactly (or broke the sequence)."""
    rejected_lines: list[str] = field(default_factory=list)
    """The first `MAX_REJECTED_KEPT` of them, escaped and cut to `MAX_REJECTED_CHARS`."""
    missing: int = 0
    """Sequence numbers never seen (beyond `dropped`): lines lost before tierlock read the log."""


def _decode(value: str) -> tuple[str, bool]:
    """A `%#` field as escaped text ("" for squid's `-`, i.e. no value)."""
    if value == "-":
        return "", False
    if "%" not in value:
        return escape_text(value)
    return escape_bytes(unquote_to_bytes(_PARTIAL.sub("", value)))


def _well_formed(m: re.Match[str]) -> bool:
    """Every "%" starts a whole escape, but where squid cut the field at its width."""
    for name, width in FIELD_WIDTHS.items():
        value = m[name]
        if "%" not in value:
            continue
        if len(value) == width:
            value = _PARTIAL.sub("", value)
        if not _ESCAPES.fullmatch(value):
            return False
    return True


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def parse_access_log(text: str, mark: str, *, dropped: int = 0) -> AccessLog:
    """The requests in squid's output (lines in `log_format(mark)`), strictly.

    `text` is the log as read (`bounded_log`), `dropped` how many lines `bounded_log` left out.
    A CONNECT tunnel whose TLS SNI differs from the CONNECT host is recorded with
    `url` = `host:port sni=<name>`, so a refused SNI is on the record too.
    """
    out = AccessLog()
    lines = text.split("\n")  # only "\n": str.splitlines would also split on \r, \x1c, \x85...
    if lines and lines[-1] == "":
        lines.pop()
    last_seq = -1
    accepted = 0
    for line in lines:
        m = _LINE.fullmatch(line)
        if m is None or m["mark"] != mark or int(m["seq"]) <= last_seq or not _well_formed(m):
            out.rejected += 1
            if len(out.rejected_lines) < MAX_REJECTED_KEPT:
                kept, _ = escape_text(line)
                out.rejected_lines.append(kept[:MAX_REJECTED_CHARS])
            continue
        last_seq = int(m["seq"])
        accepted += 1
        request = _request(m)
        if request is not None:
            out.requests.append(request)
    if accepted:  # a rejected line may be one whose number is missing: counted once
        out.missing = max(0, last_seq + 1 - accepted - dropped - out.rejected)
    return out


def _request(m: re.Match[str]) -> ProxyRequest | None:
    values: dict[str, str] = {}
    escaped = False
    for name in FIELD_WIDTHS:
        values[name], changed = _decode(m[name])
        escaped = escaped or changed
    cut = [name for name, width in FIELD_WIDTHS.items() if len(m[name]) >= width]
    tag, bump, err = m["result"], values["bump"], values["err"]
    if tag == "NONE_NONE" and bump == "splice" and not err:
        return None  # squid's record of the peek step; the TCP_TUNNEL line follows
    host, sni, url = values["host"], values["sni"], values["url"]
    if sni and sni != host:
        url = f"{url} sni={sni}".strip()
    code = _int(m["status"])
    if tag == "TCP_TUNNEL":
        code = 200  # squid 5 logs a spliced tunnel's status as 500; it was established
    refused = "DENIED" in tag or bump == "terminate" or err.startswith(_REFUSED_ERRORS)
    return ProxyRequest(
        seq=int(m["seq"]),
        time=float(m["ts"]),
        method=values["method"],
        host=host,
        port=_int(m["port"]),
        allowed=not refused,
        status=code or None,
        bytes=_int(m["reply"]) or 0,
        url=url,
        sni=sni,
        host_header=values["host_header"],
        user_agent=values["user_agent"],
        escaped=escaped,
        cut=cut,
    )


def bounded_log(chunks: Iterable[bytes], max_bytes: int) -> tuple[str, int]:
    """At most `max_bytes` of a log: the whole lines of its first half and of its last half,
    and how many lines were left out between them (0: the log is complete). Memory stays
    bounded however long the log is; a single line longer than half the cap is left out too.
    Bytes that are not UTF-8 are kept as surrogate escapes (such a line is rejected later)."""
    head_cap = max_bytes // 2
    tail_cap = max_bytes - head_cap
    head: list[bytes] = []
    tail: deque[bytes] = deque()
    head_size = tail_size = dropped = 0
    head_full = skipping = False
    pending = b""

    def add(line: bytes) -> None:
        nonlocal head_size, tail_size, dropped, head_full
        if not head_full:
            if head_size + len(line) <= head_cap:
                head.append(line)
                head_size += len(line)
                return
            head_full = True
        tail.append(line)
        tail_size += len(line)
        while tail_size > tail_cap:
            tail_size -= len(tail.popleft())
            dropped += 1

    for chunk in chunks:
        *lines, rest = (pending + chunk).split(b"\n")
        for i, line in enumerate(lines):
            if skipping and i == 0:  # the end of an over-long line
                skipping = False
                continue
            add(line + b"\n")
        pending = rest
        if skipping and not lines:
            pending = b""
        elif len(pending) > tail_cap:
            pending, skipping = b"", True
            dropped += 1
    if pending and not skipping:
        add(pending)
    return b"".join([*head, *tail]).decode("utf-8", "surrogateescape"), dropped


async def read_proxy_log(client: docker.DockerClient, cid: str, mark: str) -> ProxyLog:
    """The proxy's request log, streamed: at most `PROXY_LOG_MAX_BYTES` of it is kept, and
    parsed strictly (lines not in the format, marked `mark`, are rejected and counted). Read
    and parsed in a worker thread (a full log takes seconds to parse)."""

    def read() -> ProxyLog:
        attrs = client.api.inspect_container(cid)
        stream = client.api.logs(cid, stdout=True, stderr=False, stream=True, follow=False)
        try:
            text, dropped = bounded_log(stream, PROXY_LOG_MAX_BYTES)
        finally:
            with contextlib.suppress(Exception):
                stream.close()
        parsed = parse_access_log(text, mark, dropped=dropped)
        return ProxyLog(
            proxy=attrs["Name"].lstrip("/"),
            requests=parsed.requests,
            truncated=dropped > 0,
            dropped=dropped,
            rejected=parsed.rejected,
            rejected_lines=parsed.rejected_lines,
            missing=parsed.missing,
        )

    return await run_sync(read)
