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
- The creator unlinks its tables on exit and on leaving ``with``; a tracker process
  unlinks them when the creator dies any other way (SIGTERM, SIGKILL, a crash).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

_HOST = socket.gethostname().replace(".", "_") or "host"
_TEMP_SUFFIX = ".tmp"


def shm_dir() -> Path:
    """Where tables live: ``$CCROP_SHM_DIR``, else ``/dev/shm``, else the temp folder."""
    env = os.environ.get("CCROP_SHM_DIR")
    if env:
        return Path(env).absolute()  # every process and the tracker resolve it alike, whatever their folder
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
            raise ValueError(f"{what} is a symlink loop, or a symlink where none is followed") from None
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
    """Allocate ``size`` bytes of ``fd``'s file now (``posix_fallocate``), or raise an OSError saying what to do.

    Refused before allocating anything when the filesystem reports less room: a
    failed ``fallocate`` on a disk keeps what it got until the file goes, briefly
    filling the disk for everyone.
    """
    free = free_bytes(directory)
    if free is None or size <= free:
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
                raise
            raise OSError(err.errno, no_room(what, size, directory, free)) from None
    raise OSError(errno.ENOSPC, no_room(what, size, directory, free))


def no_room(what: str, size: int, directory: Path, free: int | None) -> str:
    """The message for a filesystem without room for ``size`` bytes."""
    return (f"no room for {what}: it needs {size:,} bytes in {directory}, which has {_bytes(free)} free. Point "
            "CCROP_SHM_DIR at a filesystem with room (a tmpfs or a local disk), or give the container more shared "
            "memory (docker run --shm-size=1g, or Kubernetes: an emptyDir with medium: Memory)")


def free_bytes(directory: Path) -> int | None:
    """Bytes an unprivileged writer may still use in ``directory``'s filesystem (None if it cannot tell)."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, size_hint: int | None = None) -> Iterator[Path]:
    """Yield a temp path beside ``path`` to write the new file to; on success it is fsynced and renamed over ``path``
    and the folder fsynced, so a reader (or a crash, or SIGKILL) sees the old file or the new one, never a mix.

    A symlink is written through: its target is replaced and the link kept. A
    target that is not a regular file (FIFO, device, directory) is refused. The
    new file gets the replaced file's mode (else the umask's). Stale temp files of
    this target (their writer, on this host, gone) are removed first. A full
    filesystem raises an OSError naming the file, the bytes (``size_hint``) and
    the room; the old file stays.
    """
    target = Path(os.path.realpath(path))
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    else:
        if not stat.S_ISREG(mode):
            raise ValueError(f"refusing to replace {str(target)!r}: it is {file_kind(mode)}, not a regular file")
    directory = target.parent
    for stale in stale_temps(directory, target.name):
        unlink_quietly(stale)
    fd, tmp = make_temp(directory, target.name)
    try:
        try:
            os.fchmod(fd, stat.S_IMODE(mode) if mode is not None else 0o666 & ~_umask())
        finally:
            os.close(fd)
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as err:
        unlink_quietly(tmp)
        if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            needed = "" if size_hint is None else f"{size_hint:,} bytes "
            raise OSError(err.errno, f"{os.strerror(err.errno)}: cannot write {str(target)!r}: {needed}needed in "
                                     f"{directory}, which has {_bytes(free_bytes(directory))} free; the old file "
                                     "is unchanged") from None
        raise
    except BaseException:
        unlink_quietly(tmp)
        raise
    fsync_directory(directory)


def replace_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through ``atomic_path``."""
    with atomic_path(path, size_hint=len(data)) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def _bytes(count: int | None) -> str:
    return "an unknown number of bytes" if count is None else f"{count:,} bytes"


def _umask() -> int:
    """The process's umask, read without setting it (``os.umask`` would race with other threads' file creation)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


# ----------------------------------------------------------------- liveness of shared tables


def lock_as_creator(fd: int) -> None:
    """Mark ``fd``'s table as having a live creator (held until every copy of the fd is closed)."""
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


@contextlib.contextmanager
def creator_lock(path: Path) -> Iterator[int | None]:
    """Take the creator's lock of the table file at ``path`` (never waiting): yields the open fd while holding it, or
    None when a live process holds it (or the file cannot be opened). Released on leaving."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield None
        else:
            yield fd
    finally:
        os.close(fd)  # drops the lock


# ----------------------------------------------------------------- cleanup when the creator dies

# The creator's tables are registered with a small tracker process over a pipe. When the creator ends, however it
# ends (exit, an exception, SIGTERM while stuck in C code, SIGKILL, the OOM killer), the pipe closes and the tracker
# unlinks whatever is still registered, if it is still the same file (inode). Signals keep their meaning: nothing
# is installed in the creator. Forked children share the pipe: their parent's tables live while they do.
_TRACKER_CODE = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
owned = {}
for line in sys.stdin.buffer:
    op, inode, path = line.split()
    path = bytes.fromhex(path.decode())
    if op == b"+":
        owned[path] = int(inode)
    else:
        owned.pop(path, None)
for path, inode in owned.items():
    try:
        if os.lstat(path).st_ino == inode:
            os.unlink(path)
    except OSError:
        pass
"""

_tracker: subprocess.Popen | None = None
_tracker_pid = 0
_tracker_lock = threading.Lock()


def _tell_tracker(op: str, path: str, inode: int) -> None:
    global _tracker, _tracker_pid
    with _tracker_lock:
        if _tracker is None or _tracker_pid != os.getpid() or _tracker.poll() is not None:  # none, a parent's, dead
            if op == "-":
                return
            try:
                _tracker = subprocess.Popen([sys.executable, "-c", _TRACKER_CODE], stdin=subprocess.PIPE,
                                            stdout=subprocess.DEVNULL, start_new_session=True)
            except OSError:  # no interpreter to start (embedded Python): the owner's own cleanup still runs
                _tracker = None
                return
            _tracker_pid = os.getpid()
        try:
            _tracker.stdin.write(f"{op} {inode} {os.fsencode(path).hex()}\n".encode())
            _tracker.stdin.flush()
        except (BrokenPipeError, OSError):  # the tracker is gone: the owner's own cleanup still runs at exit
            pass


def register_owned(path: str, inode: int) -> None:
    """Have ``path`` unlinked when this process ends, however it ends (see above)."""
    _tell_tracker("+", path, inode)


def forget_owned(path: str, inode: int) -> None:
    """The owner unlinked ``path`` itself: the tracker must not touch whatever later takes that name."""
    _tell_tracker("-", path, inode)
