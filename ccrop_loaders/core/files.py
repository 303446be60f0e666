"""Files the box table lives in or is saved to: reserved before use, replaced atomically, cleaned up after crashes.

- Shared tables are regular files under ``shm_dir()``; the creator holds an
  exclusive ``flock`` on its table for as long as it lives (the kernel drops it
  when the process dies, even by SIGKILL), so ``orphaned_tables`` can tell a
  live table from a leftover one without trusting process ids alone.
- Space is reserved with ``posix_fallocate`` before anything is mapped: a full
  filesystem is an ``OSError`` that says what was needed and where, never SIGBUS.
- Saved files are written to ``.NAME.HOST.PID.TOKEN.tmp`` beside the target,
  fsynced, renamed over it and the folder fsynced; temp files whose writer
  (on this host) is gone are removed by the next save into that folder.
- The creator unlinks its tables on exit, on leaving ``with``, and on SIGTERM
  (what torchrun and Slurm send) when the process has no SIGTERM handler of its own.
"""
from __future__ import annotations

import errno
import fcntl
import os
import secrets
import signal
import socket
import stat
import tempfile
import threading
from pathlib import Path

_HOST = socket.gethostname().replace(".", "_") or "host"
_TEMP_SUFFIX = ".tmp"


def shm_dir() -> Path:
    """Where tables live: ``$CCROP_SHM_DIR``, else ``/dev/shm``, else the temp folder."""
    env = os.environ.get("CCROP_SHM_DIR")
    if env:
        return Path(env)
    return Path("/dev/shm") if os.path.isdir("/dev/shm") else Path(tempfile.gettempdir())


def file_kind(mode: int) -> str:
    """'a FIFO', 'a directory', ... for an ``st_mode`` (for error messages)."""
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return kind
    return "not a regular file"


def open_regular(path: str | os.PathLike, flags: int, what: str) -> int:
    """``os.open`` that refuses anything but a regular file, without blocking on a FIFO or following a last-component
    symlink when ``flags`` has ``O_NOFOLLOW``. Returns the fd."""
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise ValueError(f"{what} is a symlink; refusing to follow it") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ValueError(f"{what} is {file_kind(mode)}, not a regular file")
    return fd


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a process we may not signal counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reserve(fd: int, size: int, directory: Path, what: str) -> None:
    """Allocate ``size`` bytes of ``fd``'s file now (``posix_fallocate``), or raise an OSError saying what to do."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise
        free = _free_bytes(directory)
        raise OSError(err.errno, (
            f"no room for {what}: it needs {size:,} bytes in {directory}, which has {free} free. "
            "Point CCROP_SHM_DIR at a filesystem with room (a tmpfs or a local disk), or give the container more "
            "shared memory (docker run --shm-size=1g, or Kubernetes: an emptyDir with medium: Memory)")) from None


def _free_bytes(directory: Path) -> str:
    try:
        st = os.statvfs(directory)
    except OSError:
        return "an unknown number of bytes"
    return f"{st.f_bavail * st.f_frsize:,} bytes"


# ----------------------------------------------------------------- temp files


def temp_name(name: str) -> str:
    """``.NAME.HOST.PID.TOKEN.tmp``: who wrote a temp file, so a later writer can tell a stale one."""
    return f".{name}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}{_TEMP_SUFFIX}"


def make_temp(directory: Path, name: str) -> tuple[int, Path]:
    """A new temp file for ``name`` in ``directory``, opened read-write (fd, path)."""
    path = directory / temp_name(name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    return fd, path


def stale_temps(directory: Path, name: str | None = None) -> list[Path]:
    """Temp files in ``directory`` (of ``name``, or of any name) written on this host by processes now gone."""
    stale = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return stale
    for entry in entries:
        if not (entry.startswith(".") and entry.endswith(_TEMP_SUFFIX)):
            continue
        parts = entry[1:-len(_TEMP_SUFFIX)].rsplit(".", 3)
        if len(parts) != 4 or (name is not None and parts[0] != name) or parts[1] != _HOST:
            continue
        if parts[2].isdigit() and not alive(int(parts[2])):
            stale.append(directory / entry)
    return stale


def unlink_quietly(path: str | os.PathLike) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that a reader (or a crash) sees the old file or the new one, never a mix.

    A symlink is written through: its target is replaced and the link kept. A
    target that is not a regular file (FIFO, device, directory) is refused. Stale
    temp files of this target (their writer gone) are removed first. Returns the path written.
    """
    target = Path(os.path.realpath(path))
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISREG(mode):
            raise ValueError(f"refusing to replace {str(target)!r}: it is {file_kind(mode)}, not a regular file")
    directory = target.parent
    for stale in stale_temps(directory, target.name):
        unlink_quietly(stale)
    fd, tmp = make_temp(directory, target.name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        unlink_quietly(tmp)
        raise
    fsync_directory(directory)
    return target


# ----------------------------------------------------------------- liveness of shared tables


def lock_as_creator(fd: int) -> None:
    """Mark ``fd``'s table as having a live creator (held until every copy of the fd is closed)."""
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def creator_gone(path: Path) -> bool:
    """True when no process holds the creator's lock on the table file at ``path`` (False if it cannot tell)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


# ----------------------------------------------------------------- cleanup on SIGTERM

_owned: dict[str, int] = {}  # table path -> creator pid
_owned_lock = threading.Lock()


def register_owned(path: str) -> None:
    """Unlink ``path`` if this process is ended by SIGTERM (see module docstring)."""
    with _owned_lock:
        _owned[path] = os.getpid()
    _install_sigterm_handler()


def forget_owned(path: str) -> None:
    with _owned_lock:
        _owned.pop(path, None)


def _on_sigterm(signum, frame) -> None:
    for path, pid in list(_owned.items()):
        if pid == os.getpid():
            unlink_quietly(path)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)  # die of SIGTERM, as without the handler


def _install_sigterm_handler() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
