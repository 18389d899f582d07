"""Every byte of an exec's output, or an error (issue 19 item 2), on the real daemon.

docker-py's `exec_start(socket=True)` loses output that arrives in the same packet as the HTTP
response headers: http.client's buffered reader holds it and the raw socket read never sees it
(docker/docker-py#3332, #2042). `test_old_raw_read_loses_output_sent_with_the_headers` shows that
with the old way of reading, deterministically (each read waits until the command has ended, so
its output is already there when the headers are read). `test_stress_every_byte_accounted_for`
runs up to 2000 execs of known output (as many as start within TIERLOCK_EXEC_STRESS_SECONDS, 30 s
by default: ~300-500 on a busy 2-core machine; 2000 in ~210 s) — 0 bytes to past the cap, split
across stdout and stderr, 8 at a time over 4 sandboxes, each read waiting the same way — and checks
every stream by SHA-256. A stream that breaks off is an error in the transcript, never an empty success.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import itertools
import os
import random
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from inspect_ai.model._call_tools import tool_call_error
from inspect_ai.util import OutputLimitExceededError
from inspect_ai.util._sandbox.environment import SandboxUnavailableError

from tierlock.sandbox import _exec, _exec_socket
from tierlock.sandbox._exec import ExecOutcome, ExecOutputIncomplete, run_exec
from tierlock.sandbox._exec_socket import ExecConnection, ExecStreamError
from tierlock.sandbox._images import ensure_image
from tierlock.sandbox._provider import TierlockSandboxEnvironment

pytestmark = pytest.mark.docker

POLICY = str(Path(__file__).resolve().parents[1] / "policies" / "tool-restricted.yaml")
USER = "1000:1000"  # the policy's user
LIMIT = 64 * 1024  # output cap per stream for the run_exec stress
BLOB = random.Random(19).randbytes(256 * 1024)
# fmt: off
SIZES = [0, 1, 2, 7, 8, 9, 100, 1000, 4095, 4096, 4097, 8183, 8184, 8192, 8193, 16384, 32767,
         LIMIT - 1, LIMIT, LIMIT + 1, 70_000, 100_000]
# fmt: on
TARGET = 2000  # execs in the stress ...
BUDGET = float(os.environ.get("TIERLOCK_EXEC_STRESS_SECONDS", "30"))
"""... or as many as start within this many seconds (a busy 2-core machine runs ~10-30 execs/s;
set the variable higher for a longer run)."""
T = TypeVar("T")


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(fn)


@dataclass(frozen=True)
class Case:
    """One command of known output: `parts` are (stream, offset in BLOB, length), written in
    order; the command exits with `code`."""

    parts: tuple[tuple[int, int, int], ...]
    code: int = 0

    def argv(self) -> list[str]:
        steps = [
            f"dd if=/tmp/blob bs=64K iflag=skip_bytes,count_bytes skip={o} count={n} status=none"
            + (" >&2" if stream == 2 else "")
            for stream, o, n in self.parts
        ]
        return ["/bin/sh", "-c", "; ".join([*steps, f"exit {self.code}"])]

    def expected(self, stream: int) -> bytes:
        return b"".join(BLOB[o : o + n] for s, o, n in self.parts if s == stream)


def check(case: Case, got: ExecOutcome, limit: int = LIMIT) -> str | None:
    """None when `got` accounts for every byte `case` writes (or, over the cap, reports a
    truncation whose bytes are the true output's first bytes); else what is wrong."""
    streams = [("stdout", got.stdout, case.expected(1)), ("stderr", got.stderr, case.expected(2))]
    if any(len(want) > limit for _, _, want in streams):
        if not got.overflow:
            return "output over the cap not reported as truncated"
        for name, have, want in streams:
            if have != want[: len(have)]:
                return f"truncated {name} is not the start of the true output"
        if not any(len(want) > limit and have == want[:limit] for _, have, want in streams):
            return "truncated short of the cap"
        return None
    if got.overflow or got.host_timeout:
        return f"overflow={got.overflow} host_timeout={got.host_timeout} under the cap"
    for name, have, want in streams:
        if hashlib.sha256(have).digest() != hashlib.sha256(want).digest():
            return f"{name}: {len(have)} of {len(want)} bytes, SHA-256 differs"
    if got.exit_code != case.code:
        return f"exit code {got.exit_code}, expected {case.code}"
    return None


def wait_for_exit(api: Any, exec_id: str) -> None:
    """Block until the exec has ended (at most 1 s, for outputs too big to sit in the socket's
    buffers), so that its output is already queued behind the response headers."""
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        info = api.exec_inspect(exec_id)
        if not info.get("Running") and info.get("ExitCode") is not None:
            break
        time.sleep(0.003)
    time.sleep(0.002)


def cases(seed: int) -> Iterator[Case]:
    """Every size alone on each stream and mixed, then random splits across both streams."""
    rng = random.Random(seed)

    def part(stream: int, n: int) -> tuple[int, int, int]:
        return (stream, rng.randrange(len(BLOB) - n + 1), n)

    for n in SIZES:
        yield Case((part(1, n),))
        yield Case((part(2, n),), code=n % 3)
        yield Case((part(1, n), part(2, rng.choice(SIZES)), part(1, rng.choice(SIZES[:8]))))
    while True:
        k = rng.randint(1, 3)
        small = rng.random() < 0.7  # most commands print little: the case docker-py loses
        pool = SIZES[:12] if small else SIZES
        yield Case(
            tuple(part(rng.randint(1, 2), rng.choice(pool)) for _ in range(k)),
            code=rng.choice([0, 0, 1, 2]),
        )


@pytest.fixture(scope="module")
def boxes(docker_client: Any) -> Iterator[list[TierlockSandboxEnvironment]]:
    """Four sandboxes of the tool-restricted policy, each holding BLOB at /tmp/blob (written
    through the exec's stdin) and its hex at /tmp/blob.hex."""
    ensure_image(docker_client)

    async def init() -> list[TierlockSandboxEnvironment]:
        out: list[TierlockSandboxEnvironment] = []
        for _ in range(4):
            envs = await TierlockSandboxEnvironment.sample_init("exec-stress", POLICY, {})
            env = envs["default"]
            assert isinstance(env, TierlockSandboxEnvironment)
            out.append(env)
        return out

    envs = run(init)
    try:
        for env in envs:
            wrote = run_exec(
                docker_client.api,
                env.container_id,
                [
                    "/bin/sh",
                    "-c",
                    "cat > /tmp/blob && od -An -v -tx1 /tmp/blob "
                    "| tr -d ' \\n' > /tmp/blob.hex && sha256sum /tmp/blob",
                ],
                stdin=BLOB,
                user=USER,
                limit=LIMIT,
                deadline=60,
            )
            assert wrote.exit_code == 0, wrote
            assert wrote.stdout.split()[0].decode() == hashlib.sha256(BLOB).hexdigest()
        yield envs
    finally:

        async def done() -> None:
            for env in envs:
                await TierlockSandboxEnvironment.sample_cleanup(
                    "exec-stress", POLICY, {"default": env}, False
                )

        run(done)


def _stress(
    api: Any,
    containers: list[str],
    source: Iterator[Case],
    *,
    target: int,
    budget: float,
    threads: int = 8,
) -> tuple[int, list[str]]:
    """Run cases from `source` through `run_exec`, `threads` at a time, until `target` ran or
    `budget` seconds passed; (count, failures)."""
    lock = threading.Lock()
    counter = itertools.count()
    failures: list[str] = []
    done = [0]
    stop_at = time.monotonic() + budget

    def worker() -> None:
        while time.monotonic() < stop_at:
            with lock:
                i = next(counter)
                if i >= target:
                    return
                case = next(source)
            cid = containers[i % len(containers)]
            try:
                got = run_exec(api, cid, case.argv(), user=USER, limit=LIMIT, deadline=60)
                problem = check(case, got)
            except Exception as e:  # an error is never a silent loss, but here none is expected
                problem = f"{type(e).__name__}: {e}"
            with lock:
                done[0] += 1
                if problem:
                    failures.append(f"{case}: {problem}")

    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(worker) for _ in range(threads)]:
            f.result()
    return done[0], failures


def test_stress_every_byte_accounted_for(
    boxes: list[TierlockSandboxEnvironment], docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = docker_client.api
    with_headers: list[int] = []
    real_start = _exec.start_exec

    def start(api: Any, exec_id: str, **kw: Any) -> ExecConnection:
        conn = real_start(api, exec_id, **kw)
        if conn.buffered:
            with_headers.append(conn.buffered)
        return conn

    monkeypatch.setattr(_exec, "start_exec", start)
    monkeypatch.setattr(_exec_socket, "BEFORE_FIRST_READ", functools.partial(wait_for_exit, api))
    t0 = time.monotonic()
    count, failures = _stress(
        api, [b.container_id for b in boxes], cases(19), target=TARGET, budget=BUDGET
    )
    print(
        f"\n{count} execs in {time.monotonic() - t0:.1f} s, {len(failures)} wrong; "
        f"{len(with_headers)} had output in the same read as the response headers"
    )
    assert not failures, "\n".join(failures[:20])
    assert count >= 3 * len(SIZES)  # at least every size alone and mixed
    assert with_headers, "no exec had its output arrive with the headers: the test proves nothing"


def _old_read(api: Any, exec_id: str) -> ExecOutcome:
    """The reading this module replaced: docker-py's exec_start(socket=True), then frames read
    from the raw socket beneath http.client's buffered reader."""
    sock = api.exec_start(exec_id, socket=True)
    raw = getattr(sock, "_sock", sock)
    out = {1: bytearray(), 2: bytearray()}
    buf = bytearray()

    def recv_exact(n: int) -> bytes | None:
        while len(buf) < n:
            data = raw.recv(65536)
            if not data:
                return None
            buf.extend(data)
        chunk = bytes(buf[:n])
        del buf[:n]
        return chunk

    try:
        while (header := recv_exact(8)) is not None:
            stream, size = struct.unpack(">BxxxL", header)
            payload = recv_exact(size)
            if payload is None:
                break
            out[stream if stream in (1, 2) else 1] += payload
    finally:
        sock.close()
    code = api.exec_inspect(exec_id).get("ExitCode")
    return ExecOutcome(code, bytes(out[1]), bytes(out[2]))


@pytest.fixture
def slow_headers(monkeypatch: pytest.MonkeyPatch) -> threading.local:
    """http.client reads a response's headers only after calling `hook` when the current thread
    has set one (once): the delay before the response is read, for docker-py's own requests."""
    local = threading.local()
    real_begin = http.client.HTTPResponse.begin

    def begin(self: http.client.HTTPResponse) -> None:
        hook = getattr(local, "hook", None)
        local.hook = None
        if hook is not None:
            hook()
        real_begin(self)

    monkeypatch.setattr(http.client.HTTPResponse, "begin", begin)
    return local


def _small_cases(n: int) -> list[Case]:
    rng = random.Random(2042)
    return [
        Case(
            (
                (1, rng.randrange(1000), rng.randint(1, 3000)),
                (2, rng.randrange(1000), rng.randint(0, 3000)),
            ),
            code=i % 2,
        )
        for i in range(n)
    ]


def test_old_raw_read_loses_output_sent_with_the_headers(
    boxes: list[TierlockSandboxEnvironment], docker_client: Any, slow_headers: threading.local
) -> None:
    """The original bug, reproduced: docker-py's raw socket read of a command whose output
    arrived with the headers returns nothing, with exit code 0 or 1 — and `check` sees it."""
    api, cid = docker_client.api, boxes[0].container_id
    lost = []
    for case in _small_cases(10):
        exec_id = api.exec_create(cid, case.argv(), user=USER)["Id"]
        slow_headers.hook = functools.partial(wait_for_exit, api, exec_id)
        got = _old_read(api, exec_id)
        assert got.exit_code == case.code  # "success" as far as docker-py can tell
        lost.append(check(case, got))
    print(
        f"\nold raw read: {sum(p is not None for p in lost)} of {len(lost)} lost output: {lost[0]}"
    )
    assert all(p is not None and "SHA-256 differs" in p for p in lost), lost


def test_both_readers_keep_output_sent_with_the_headers(
    boxes: list[TierlockSandboxEnvironment],
    docker_client: Any,
    slow_headers: threading.local,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same commands, the same delay: tierlock's own socket, and reading through docker-py's
    buffered reader (used for TLS/ssh daemons), both return every byte."""
    api, cid = docker_client.api, boxes[1].container_id
    real_start = _exec_socket.start_exec

    def through_http_layer(api: Any, exec_id: str, **kw: Any) -> ExecConnection:
        slow_headers.hook = functools.partial(wait_for_exit, api, exec_id)
        return real_start(api, exec_id, own_socket=False)

    for case in _small_cases(10):
        monkeypatch.setattr(
            _exec_socket, "BEFORE_FIRST_READ", functools.partial(wait_for_exit, api)
        )
        got = run_exec(api, cid, case.argv(), user=USER, limit=LIMIT, deadline=60)
        assert check(case, got) is None, (case, check(case, got))

        monkeypatch.setattr(_exec_socket, "BEFORE_FIRST_READ", None)
        monkeypatch.setattr(_exec, "start_exec", through_http_layer)
        got = run_exec(api, cid, case.argv(), user=USER, limit=LIMIT, deadline=60)
        monkeypatch.setattr(_exec, "start_exec", real_start)
        assert check(case, got) is None, (case, check(case, got))


def test_http_layer_reader_stress(
    boxes: list[TierlockSandboxEnvironment], docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback reader (through docker-py's HTTP layer) over the same case mix, fewer."""
    real_start = _exec_socket.start_exec
    monkeypatch.setattr(_exec, "start_exec", functools.partial(real_start, own_socket=False))
    count, failures = _stress(
        docker_client.api, [b.container_id for b in boxes], cases(3042), target=200, budget=8.0
    )
    print(f"\nthrough the HTTP layer: {count} execs, {len(failures)} wrong")
    assert not failures, "\n".join(failures[:20])


def test_provider_output_complete_and_cap_reported_as_truncation(
    boxes: list[TierlockSandboxEnvironment],
) -> None:
    """Through the provider (as tool calls see it): text output of many sizes, concurrently,
    exact; over `limits.output_bytes` (1 MiB) it is truncation with the true first bytes."""
    hexed = BLOB.hex()
    rng = random.Random(7)
    calls = [
        (rng.randrange(len(hexed)), rng.choice([0, 1, 5000, 70_000, 200_000])) for _ in range(48)
    ]

    async def scenario() -> None:
        sem = anyio.Semaphore(8)

        async def one(i: int, off: int, n: int) -> None:
            n = min(n, len(hexed) - off)
            async with sem:
                r = await boxes[i % 4].exec(
                    [
                        "dd",
                        "if=/tmp/blob.hex",
                        "bs=64K",
                        "status=none",
                        "iflag=skip_bytes,count_bytes",
                        f"skip={off}",
                        f"count={n}",
                    ]
                )
            assert r.success and r.stdout == hexed[off : off + n], (off, n, len(r.stdout))

        async with anyio.create_task_group() as tg:
            for i, (off, n) in enumerate(calls):
                tg.start_soon(one, i, off, n)

        with pytest.raises(OutputLimitExceededError) as info:
            await boxes[0].exec(["cat", "/tmp/blob.hex", "/tmp/blob.hex", "/tmp/blob.hex"])
        assert info.value.truncated_output == (hexed * 3)[: 1024**2]

    run(scenario)


class _Cut:
    """Starts execs whose connection breaks after exactly `after` bytes of stream (choose a count
    inside a frame): `how` = "eof" (the far side closed) or "reset" (the connection reset)."""

    def __init__(self, after: int, how: str) -> None:
        self.after, self.how = after, how
        self.real = _exec_socket.start_exec

    def __call__(self, api: Any, exec_id: str, **kw: Any) -> ExecConnection:
        conn = self.real(api, exec_id, **kw)
        fill = conn._fill

        def cut() -> bool:
            room = self.after - conn.received - conn.buffered
            if room <= 0:
                if self.how == "reset":
                    raise ConnectionResetError(104, "Connection reset by peer")
                return False
            ok = fill()
            excess = conn.received + conn.buffered - self.after
            if excess > 0:
                del conn._buf[-excess:]
            return ok

        conn._fill = cut  # type: ignore[method-assign]
        if conn.received + conn.buffered > self.after:  # already past it with the headers
            del conn._buf[self.after - conn.received :]
        return conn


@pytest.mark.parametrize("how", ["eof", "reset"])
def test_broken_stream_is_an_error_never_a_short_success(
    boxes: list[TierlockSandboxEnvironment],
    docker_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    """A stream that breaks off mid-output: run_exec raises, the provider's exec and read_file
    raise (a SandboxUnavailableError, so a tool call fails with the message), and the command
    is not left running."""
    box = boxes[2]
    monkeypatch.setattr(_exec, "start_exec", _Cut(10_000, how))
    with pytest.raises(ExecOutputIncomplete, match="could not be read completely"):
        run_exec(
            docker_client.api,
            box.container_id,
            ["/bin/sh", "-c", "cat /tmp/blob; sleep 30"],
            user=USER,
            limit=LIMIT,
            deadline=60,
        )
    with pytest.raises(SandboxUnavailableError) as info:
        run(lambda: box.exec(["cat", "/tmp/blob.hex"]))
    mapped = tool_call_error(info.value, "bash")
    assert mapped is not None and mapped.error.type == "sandbox_unavailable"
    assert "could not be read completely" in mapped.error.message
    with pytest.raises(SandboxUnavailableError):
        run(lambda: box.read_file("/tmp/blob.hex"))
    monkeypatch.setattr(_exec, "start_exec", _exec_socket.start_exec)
    ps = run(lambda: box.exec(["ps", "-eo", "args"])).stdout
    assert "sleep 30" not in ps


def _pair(data: bytes) -> ExecConnection:
    """A connection whose peer sent `data` and closed (a socket pair: pure stream logic)."""
    ours, theirs = socket.socketpair()
    theirs.sendall(data)
    theirs.close()
    return ExecConnection(ours)


def _frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def test_frame_reader_is_strict() -> None:
    conn = _pair(_frame(1, b"out") + _frame(2, b"") + _frame(2, b"err"))
    assert [conn.read_frame(), conn.read_frame(), conn.read_frame(), conn.read_frame()] == [
        (1, b"out"),
        (2, b""),
        (2, b"err"),
        None,
    ]
    bad = {
        "ended inside a frame header": _frame(1, b"ok") + b"\x01\x00\x00",
        "ended inside a frame payload": _frame(1, b"ok")[:-1],
        "malformed frame header": b"\x01\x00\x07\x00\x00\x00\x00\x01x",
        "reported an error": _frame(3, b"exec failed: boom"),
    }
    for message, data in bad.items():
        conn = _pair(data)
        with pytest.raises(ExecStreamError, match=message):
            while conn.read_frame() is not None:
                pass
    # the bytes already received with the headers come first, then the socket's
    conn = ExecConnection(*_split(_frame(2, b"head") + _frame(1, b"tail"), 5))
    assert [conn.read_frame(), conn.read_frame(), conn.read_frame()] == [
        (2, b"head"),
        (1, b"tail"),
        None,
    ]


def _split(data: bytes, at: int) -> tuple[socket.socket, bytes]:
    ours, theirs = socket.socketpair()
    theirs.sendall(data[at:])
    theirs.close()
    return ours, data[:at]


def test_stream_closed_before_the_command_ends(
    boxes: list[TierlockSandboxEnvironment], docker_client: Any
) -> None:
    """A command that closes its output and goes on: its exit status is waited for within the
    deadline (not reported missing); past the deadline it is a host-side timeout, killed."""
    api, cid = docker_client.api, boxes[3].container_id
    script = "echo hi; echo ho >&2; exec >&- 2>&-; sleep 2.5; exit 4"
    got = run_exec(api, cid, ["/bin/sh", "-c", script], user=USER, limit=LIMIT, deadline=30)
    assert (got.stdout, got.stderr, got.exit_code, got.host_timeout) == (b"hi\n", b"ho\n", 4, False)
    script = "echo hi; exec >&- 2>&-; sleep 41"
    got = run_exec(api, cid, ["/bin/sh", "-c", script], user=USER, limit=LIMIT, deadline=1)
    assert got.host_timeout and got.stdout == b"hi\n"
    ps = run_exec(api, cid, ["ps", "-eo", "args"], user=USER, limit=LIMIT, deadline=30).stdout
    assert b"sleep 41" not in ps


@pytest.fixture
def tcp_api(docker_client: Any) -> Iterator[Any]:
    """A docker-py client that reaches the daemon over TCP on 127.0.0.1 (a forwarder to its unix
    socket), for tierlock's own TCP connection."""
    import docker

    path = docker_client.api.get_adapter(docker_client.api.base_url).socket_path
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def pump(src: socket.socket, dst: socket.socket, done: threading.Semaphore) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if not done.acquire(blocking=False):  # the second pump to end closes both
            src.close()
            dst.close()

    def serve() -> None:
        while True:
            try:
                outer, _ = server.accept()
            except OSError:
                return
            inner = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            inner.connect(path)
            done = threading.Semaphore(1)
            for a, b in ((outer, inner), (inner, outer)):
                threading.Thread(target=pump, args=(a, b, done), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    api = docker.APIClient(
        base_url=f"tcp://127.0.0.1:{port}", version=docker_client.api.api_version
    )
    try:
        yield api
    finally:
        api.close()
        server.close()


def test_own_tcp_connection_keeps_output_sent_with_the_headers(
    boxes: list[TierlockSandboxEnvironment], tcp_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    families: list[int] = []
    real_start = _exec_socket.start_exec

    def start(api: Any, exec_id: str, **kw: Any) -> ExecConnection:
        conn = real_start(api, exec_id, **kw)
        families.append(conn._sock.family)
        return conn

    monkeypatch.setattr(_exec, "start_exec", start)
    monkeypatch.setattr(
        _exec_socket, "BEFORE_FIRST_READ", functools.partial(wait_for_exit, tcp_api)
    )
    for case in [*_small_cases(8), Case(((1, 0, 100_000), (2, 5, 70_000)))]:
        got = run_exec(
            tcp_api, boxes[3].container_id, case.argv(), user=USER, limit=LIMIT, deadline=60
        )
        assert check(case, got) is None, (case, check(case, got))
    assert set(families) == {socket.AF_INET}


def test_broken_stream_is_a_tool_error_in_the_transcript(
    docker_client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """In an eval: the bash call whose output stream breaks off is a failed tool call in the
    `.eval` log, with the reason and none of the partial output; the sample goes on."""
    from _sandbox_helpers import scripted_model, tool_outputs
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.log import read_eval_log
    from inspect_ai.solver import generate, use_tools
    from inspect_ai.tool import bash

    ensure_image(docker_client)
    cut = _Cut(8 + 3, "eof")  # inside the first frame (its payload starts "CUT_ME")

    def start(api: Any, exec_id: str, **kw: Any) -> ExecConnection:
        args = api.exec_inspect(exec_id).get("ProcessConfig", {}).get("arguments") or []
        return (cut if any("CUT_ME" in a for a in args) else cut.real)(api, exec_id, **kw)

    monkeypatch.setattr(_exec, "start_exec", start)
    script = ["echo before", "echo CUT_ME; seq 1 100000", "echo after"]
    task = Task(
        dataset=[Sample(id="cut", input="cut")],
        solver=[use_tools(bash(timeout=30)), generate()],
        sandbox=("tierlock", POLICY),
    )
    logs = eval(task, model=scripted_model({"cut": script}), log_dir=str(tmp_path), display="none")
    assert logs[0].status == "success", logs[0].error
    log = read_eval_log(logs[0].location)
    assert log.samples is not None
    outputs = tool_outputs(log.samples[0])
    assert outputs[0] == "before\n" and outputs[2] == "after\n", outputs
    assert "[error sandbox_unavailable: " in outputs[1] and "could not be read" in outputs[1]
    assert "CUT_ME" not in outputs[1] and "\n1\n" not in outputs[1], outputs[1][:300]
