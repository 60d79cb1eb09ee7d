"""The audit log: JSON lines about what the apply asks and what the backend answered, so a later run (or a
person) can reconcile the log with the backend's own trail by idempotency key. Never a token: only plan ids,
step ids, what was asked, the backend's rule codes and timings.

- Before each request a `step-intent` line (plan id, step id, action, target, idempotency key); after each
  step a `step-result` line (outcome, code, attempts, ms, revision, key). The apply sends nothing whose intent
  is not on disk, so every request the backend may have committed has at least its intent logged.
- Each line is all or nothing: built whole, appended with `os.write` on an `O_APPEND` descriptor, and if the
  write comes up short (disk full, `ulimit -f`: EFBIG, ENOSPC) the file is cut back to where the line began,
  so the last line is never a truncated JSON line. (Python ignores SIGXFSZ, so a file size limit raises EFBIG
  instead of killing the process.)
- The first failed write marks the log broken (`failure`): later writes raise at once without touching the
  file, and the executor stops before its next request.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

#: Where the log goes unless --audit-log says otherwise.
DEFAULT_AUDIT_LOG = Path(".reconciler") / "audit.jsonl"


class AuditError(Exception):
    """The audit log cannot be written: one line naming the path and the OS error."""

    def __init__(self, path: Path, error: OSError, what: str | None = None) -> None:
        self.path = path
        self.error = error
        reason = error.strerror or os.strerror(error.errno or 0) or type(error).__name__
        super().__init__(f"audit log {path}: {what}: {reason}" if what else f"audit log {path}: {reason}")


class AuditLog:
    """Append-only JSON lines; `AuditLog(None)` writes nothing (`--audit-log -`)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fd: int | None = None
        self._regular = False
        self._newline_first = False          # the file did not end with a newline: start on a fresh line
        #: the first write that failed; the log takes no more lines after it
        self.failure: AuditError | None = None

    def open(self) -> "AuditLog":
        """Open for appending; an unwritable path raises `AuditError` before anything is sent."""
        if self.path is None or self._fd is not None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError as error:        # "File exists" alone would mislead: the folder is a file
            raise AuditError(self.path, OSError(error.errno, "not a folder"), str(self.path.parent)) from None
        except OSError as error:
            raise AuditError(self.path, error, f"cannot make its folder {self.path.parent}") from None
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise AuditError(self.path, error) from None
        try:
            info = os.fstat(fd)
            self._regular = stat.S_ISREG(info.st_mode)
            if self._regular and info.st_size > 0:
                with open(self.path, "rb") as read:          # O_APPEND cannot read: a second, read-only look
                    read.seek(info.st_size - 1)
                    self._newline_first = read.read(1) != b"\n"
        except OSError as error:
            os.close(fd)
            raise AuditError(self.path, error) from None
        self._fd = fd
        return self

    def __enter__(self) -> "AuditLog":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> AuditError | None:
        """Sync to disk and close; returns (and keeps as `failure`) an error rather than raising it, since
        the apply's report must still be printed."""
        fd, self._fd = self._fd, None
        if fd is None:
            return self.failure
        try:
            if self._regular:
                os.fsync(fd)
        except OSError as error:
            if self.failure is None and self.path is not None:
                self.failure = AuditError(self.path, error)
        finally:
            os.close(fd)
        return self.failure

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def write(self, event: str, **fields: Any) -> None:
        """Append one line, whole or not at all; raises `AuditError` if it could not be written."""
        if self.path is None:
            return
        if self.failure is not None:
            raise self.failure
        if self._fd is None:
            raise AuditError(self.path, OSError(errno.EBADF, "the audit log is not open"))
        record = {"at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"), "event": event, **fields}
        line = json.dumps(record, ensure_ascii=True, default=str, separators=(",", ":")) + "\n"
        data = (b"\n" if self._newline_first else b"") + line.encode("utf-8")
        try:
            self._append(data)
        except OSError as error:
            self.failure = AuditError(self.path, error)
            raise self.failure from None
        self._newline_first = False

    def _append(self, data: bytes) -> None:
        """All of `data` at the end of the file, or the file as it was (cut back after a short write)."""
        assert self._fd is not None
        start = os.fstat(self._fd).st_size if self._regular else None
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                if written <= 0:                # not expected from a regular file; never loop forever
                    raise OSError(errno.EIO, "the audit log took no bytes")
                view = view[written:]
        except OSError:
            if start is not None and len(view) < len(data):
                try:
                    os.ftruncate(self._fd, start)
                except OSError:
                    pass                        # cutting a file shorter needs no space; nothing else to try
            raise
