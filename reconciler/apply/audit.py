"""The audit log: one JSON line per request the apply makes and its outcome, appended and flushed at once,
so a killed apply leaves a true record up to its last step (synced to disk when the apply ends). Never a token: only plan ids, step ids, what was
asked, the backend's rule codes and timings."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any, TextIO

#: Where the log goes unless --audit-log says otherwise.
DEFAULT_AUDIT_LOG = Path(".reconciler") / "audit.jsonl"


class AuditLog:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: TextIO | None = None

    def __enter__(self) -> "AuditLog":
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def write(self, event: str, **fields: Any) -> None:
        if self._file is None:
            return
        record = {"at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"), "event": event, **fields}
        self._file.write(json.dumps(record, ensure_ascii=False, default=str, separators=(",", ":")) + "\n")
        self._file.flush()               # in the OS at once: a killed apply leaves every line it wrote
