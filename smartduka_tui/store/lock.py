"""One till process per data folder: an exclusive `fcntl` lock on `<data_dir>/till.lock`.

The kernel drops the lock when the process dies, however it dies, so a crash never leaves a
stale lock behind. The file holds the holder's pid so a second opener can say who has it.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType

from smartduka_tui.store.errors import (
    DatabaseError,
    DataDirLockedError,
    StoreFullError,
    StoreIOError,
    StoreReadOnlyError,
)

LOCK_FILE_NAME = "till.lock"


class DataDirLock:
    """A held data-folder lock; release it with `release()` or by leaving a `with` block."""

    def __init__(self, data_dir: Path, fd: int) -> None:
        self.data_dir = data_dir
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def acquire_data_dir_lock(data_dir: str | Path) -> DataDirLock:
    """Take the data folder (creating it, private, if missing) or raise DataDirLockedError
    naming the process that holds it; a full or read-only disk gives its StoreError."""
    folder = Path(data_dir)
    lock_path = folder / LOCK_FILE_NAME
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise _disk_error(lock_path, error) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        raise DataDirLockedError(folder, holder) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as error:
        os.close(fd)
        raise _disk_error(lock_path, error) from None
    return DataDirLock(folder, fd)


def _disk_error(path: Path, error: OSError) -> DatabaseError:
    """The store's words for an OS error on the data folder (a full disk on first run, say)."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreFullError(path)
    if isinstance(error, PermissionError) or error.errno == errno.EROFS:
        return StoreReadOnlyError(path)
    return StoreIOError(path, error.strerror or str(error))


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None
