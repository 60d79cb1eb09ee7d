"""An organisation file once loaded, and the reporter that collects its findings: what the loader produces and
the checks read, in a module of its own so that neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reconciler.config.models import OrgConfig
from reconciler.config.yamlpos import JsonPath, Mark, YamlDocument
from reconciler.diagnostics import Diagnostic, Severity, format_json_path
from reconciler.domain.catalogue import Catalogue


@dataclass
class Reporter:
    """Collects diagnostics for one file, turning JSON paths into lines and columns."""

    display: str
    doc: YamlDocument | None = None
    items: list[Diagnostic] = field(default_factory=list)

    def add(self, severity: Severity, path: JsonPath, code: str, message: str, *, at_key: bool = False,
            mark: Mark | None = None) -> None:
        if mark is None:
            mark = self.doc.mark(path, key=at_key) if self.doc is not None else Mark(1, 1)
        self.items.append(Diagnostic(self.display, mark.line, mark.column, severity, code, message,
                                     format_json_path(path)))

    def error(self, path: JsonPath, code: str, message: str, *, at_key: bool = False) -> None:
        self.add(Severity.ERROR, path, code, message, at_key=at_key)

    def warning(self, path: JsonPath, code: str, message: str, *, at_key: bool = False) -> None:
        self.add(Severity.WARNING, path, code, message, at_key=at_key)

    def note(self, path: JsonPath, code: str, message: str, *, at_key: bool = False) -> None:
        self.add(Severity.NOTE, path, code, message, at_key=at_key)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)


@dataclass
class LoadedOrg:
    """One organisation file that parsed and matched the schema."""

    path: Path
    display: str
    doc: YamlDocument
    config: OrgConfig
    catalogue: Catalogue
    reporter: Reporter
