"""Opening a file the user named: regular files only, never blocking, bounded reads.

A FIFO, a character device (`/dev/zero`), a directory, a symlink loop or a name longer than the
system allows is refused with one line naming the path and what is wrong (`UserFileError`), before
anything reads from it: the file is opened with `O_NONBLOCK` (so opening a FIFO cannot block) and
checked with `fstat` on the same descriptor (so what is checked is what is read).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path
from typing import BinaryIO

from ._errors import TierlockError

_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}
_WHY = {
    errno.ENOENT: "no such file",
    errno.ELOOP: "too many levels of symbolic links (a symlink loop?)",
    errno.ENAMETOOLONG: "file name too long",
    errno.EACCES: "permission denied",
    errno.ENOTDIR: "a component of the path is not a directory",
}


class UserFileError(TierlockError):
    """A path the user gave cannot be read as a regular file."""


def short(path: str | Path, limit: int = 120) -> str:
    """The path for a message: very long names are cut in the middle (the rest is noise)."""
    s = str(path)
    return s if len(s) <= limit else f"{s[: limit // 2]}…{s[-limit // 2 :]} ({len(s)} bytes)"


def os_reason(e: OSError) -> str:
    """A short, stable reason for an OS error (no repeated path, no errno number)."""
    return _WHY.get(e.errno or 0) or (e.strerror or type(e).__name__).lower()


def kind_of(mode: int) -> str | None:
    """What a non-regular file is ('a FIFO (named pipe)', ...); None for a regular file."""
    return None if stat.S_ISREG(mode) else _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def open_regular(path: str | Path, what: str = "file") -> BinaryIO:
    """Open `path` for reading, only if it is a regular file (following symlinks).

    Raises `UserFileError` ("PATH: cannot read WHAT: REASON") for anything else.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise UserFileError(f"{short(path)}: cannot read {what}: {os_reason(e)}") from None
    try:
        kind = kind_of(os.fstat(fd).st_mode)
        if kind is not None:
            raise UserFileError(f"{short(path)}: cannot read {what}: it is {kind}, not a file")
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | Path, what: str = "file", max_bytes: int = 16 << 20) -> bytes:
    """The whole content of a small user file, refusing non-files and files too large."""
    with open_regular(path, what) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UserFileError(f"{short(path)}: cannot read {what}: larger than {max_bytes} bytes")
    return data


def read_text(path: str | Path, what: str = "file", max_bytes: int = 16 << 20) -> str:
    """The whole text of a small user file (UTF-8), refusing non-files and files too large."""
    data = read_bytes(path, what, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserFileError(
            f"{short(path)}: cannot read {what}: not UTF-8 text (byte {e.start})"
        ) from None


def check_output_path(path: str | Path, what: str = "output file") -> None:
    """Refuse an output path whose directory is missing or that is not a regular file."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        parent = p.parent
        try:
            if not parent.is_dir():
                raise UserFileError(
                    f"{short(path)}: cannot write {what}: directory {short(parent)} does not exist"
                )
        except OSError as e:
            raise UserFileError(f"{short(path)}: cannot write {what}: {os_reason(e)}") from None
        return
    except OSError as e:
        raise UserFileError(f"{short(path)}: cannot write {what}: {os_reason(e)}") from None
    kind = kind_of(st.st_mode)
    device = stat.S_ISCHR(st.st_mode) or str(path).startswith(("/dev/", "/proc/"))
    if kind is not None and not device:  # /dev/null, /dev/stdout, `>(cmd)` are fine
        raise UserFileError(f"{short(path)}: cannot write {what}: it is {kind}")


def check_dir(path: str | Path, what: str = "directory") -> None:
    """Refuse a path that cannot be used as a directory (a file, a device, a symlink loop, a name
    too long); a missing one is fine (it will be created)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise UserFileError(f"{short(path)}: cannot use as the {what}: {os_reason(e)}") from None
    if not stat.S_ISDIR(st.st_mode):
        kind = kind_of(st.st_mode) or "a regular file"
        raise UserFileError(f"{short(path)}: cannot use as the {what}: it is {kind}")
