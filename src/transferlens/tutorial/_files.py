"""File locks and writes that never follow a symlink, on POSIX and on Windows.

The stand-in cache and the real-asset prefetch are written by several processes at once (pages
run in parallel kernels), and so are the site machinery's files in ``build/`` (the executed pages,
their records, the kernel-start lock: ``tools/pagecache.py`` and ``tools/pagerun.py`` use the two
helpers below, the repository's only ones). Two tools keep that safe:

- `file_lock`: an inter-process lock on a lock file, shared (readers) or exclusive (writers).
  POSIX uses `fcntl.flock`; where `fcntl` does not exist (Windows) it falls back to
  `msvcrt.locking`, which has exclusive locks only, so a shared lock is exclusive there. Neither
  module is imported before a lock is taken, so importing `transferlens.tutorial` needs neither.
- `write_atomically`: write a temporary file in the target's folder (created exclusively, with
  `O_NOFOLLOW` where the platform has it), then `os.replace` it onto the target. A symlink
  planted at the target is replaced, never written through, and a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

# 0 where the platform lacks the flag (O_NOFOLLOW: Windows; O_BINARY: POSIX).
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _open_lock_file(path: Path) -> int:
    """Open (creating) a lock file without following a symlink or truncating anything."""
    flags = os.O_RDWR | os.O_CREAT | _NO_FOLLOW | _BINARY | _CLOEXEC
    try:
        return os.open(path, flags, 0o644)
    except OSError:
        if not path.is_symlink():  # O_NOFOLLOW refuses a link with ELOOP (EMLINK on BSDs)
            raise
    # A symlink sits where the lock file belongs: remove the link (never its target), retry.
    with contextlib.suppress(FileNotFoundError):  # another process removed it first
        path.unlink()
    return os.open(path, flags, 0o644)


def _lock(fd: int, shared: bool) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        _lock_msvcrt(fd)
        return
    fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)


def _unlock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


def _lock_msvcrt(fd: int) -> None:
    import msvcrt

    os.lseek(fd, 0, os.SEEK_SET)
    while True:
        try:
            # LK_LOCK retries for about 10 s, then raises: keep waiting, as flock does.
            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
            return
        except OSError:
            continue


@contextlib.contextmanager
def file_lock(path: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold an inter-process lock on ``path`` (created if missing) for the block.

    Args:
        path: the lock file; its folder must exist.
        shared: a shared (read) lock, held by any number of processes at once, instead of an
            exclusive one. Exclusive where the platform has no shared locks.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with file_lock(folder / ".lock"):
        ...     (folder / "data.txt").write_text("written while holding the lock")
        30
    """
    fd = _open_lock_file(path)
    try:
        _lock(fd, shared)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


def write_atomically(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``target`` through a temporary file in its folder, then ``os.replace`` it.

    Args:
        target: the file to (re)write. A symlink at this path is replaced by the new file; the
            link's target is never opened.
        write: called with the temporary file, open for binary writing.

    Examples:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "manifest.json"
        >>> write_atomically(target, lambda handle: handle.write(b"{}"))
        >>> target.read_bytes()
        b'{}'
    """
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW | _BINARY | _CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
