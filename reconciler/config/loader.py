"""Reading organisation files: discovery, YAML with positions, schema, models, catalogues, domain checks.

Everything wrong with the input comes back as positioned diagnostics; nothing here raises on bad input.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import pydantic

from reconciler.collector import gc_paused
from reconciler.config.checks import check_dates, check_estate, check_org
from reconciler.config.loaded import LoadedOrg, Reporter
from reconciler.config.models import OrgConfig
from reconciler.config.schema import CATALOGUE_SCHEMA, ORG_SCHEMA, schema_problems, schema_words
from reconciler.config import yamlpos
from reconciler.config.yamlpos import JsonPath, Mark, YamlDocument, YamlLoadError, decode, load_yaml
from reconciler.diagnostics import Diagnostic, Severity, format_json_path
from reconciler.domain.catalogue import Catalogue, Service, bundled_catalogue

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class LoadResult:
    orgs: list[LoadedOrg]
    diagnostics: list[Diagnostic]
    files: int

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors


def date_findings(result: LoadResult, today: dt.date) -> list[Diagnostic]:
    """The R9 findings of a result loaded with `today=None`, judged on `today` (no second load)."""
    out: list[Diagnostic] = []
    for org in result.orgs:
        reporter = Reporter(org.display, org.doc)
        check_dates(org, reporter, today)
        out.extend(reporter.items)
    return out


def discover(paths: Sequence[str]) -> tuple[list[tuple[Path, str]], list[Diagnostic]]:
    """Files named, plus every *.yaml / *.yml directly inside named directories (hidden files skipped)."""
    found: list[tuple[Path, str]] = []
    problems: list[Diagnostic] = []
    for raw in paths:
        path = Path(raw)
        kind = _kind(path)
        if kind == "bad":
            problems.append(Diagnostic(raw, 1, 1, Severity.ERROR, "input", "not a usable path (too long, or it "
                                       "contains a character no file name can hold)"))
        elif kind == "dir":
            entries = sorted(p for p in path.iterdir()
                             if p.suffix.lower() in YAML_SUFFIXES and not p.name.startswith(".") and p.is_file())
            if not entries:
                problems.append(Diagnostic(raw, 1, 1, Severity.ERROR, "input",
                                           "directory holds no *.yaml or *.yml files"))
            found.extend((p, str(p)) for p in entries)
        elif kind == "file":
            found.append((path, raw))
        else:
            problems.append(Diagnostic(raw, 1, 1, Severity.ERROR, "input", "no such file or directory"))
    seen: set[Path] = set()
    unique = []
    for path, display in found:
        resolved = _resolve(path)
        if resolved not in seen:
            seen.add(resolved)
            unique.append((path, display))
    return unique, problems


def _kind(path: Path) -> str:
    """"dir", "file", "missing" or "bad" (a name the OS refuses), without letting OSError escape."""
    try:
        if path.is_dir():
            return "dir"
        return "file" if path.exists() else "missing"
    except (OSError, ValueError):
        return "bad"


def _resolve(path: Path) -> Path | None:
    try:
        return path.resolve()
    except (OSError, ValueError):
        return None


def read_capped(path: Path, cap: int) -> bytes:
    """At most `cap` + 1 bytes of the file, whatever it is: a regular file, a pipe (`<(...)`) or a device such
    as /dev/zero, which `read_bytes()` would read until memory runs out. One byte more than the cap is read so
    that a file over it is told apart (and refused by `decode`)."""
    with path.open("rb") as handle:
        chunks, left = [], cap + 1
        while left > 0:
            chunk = handle.read(min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    return b"".join(chunks)


def read_document(path: Path, reporter: Reporter) -> YamlDocument | None:
    """Read and parse one file; problems go to `reporter`, None when there is nothing to check further."""
    try:
        raw = read_capped(path, yamlpos.MAX_BYTES)
    except IsADirectoryError:
        reporter.add(Severity.ERROR, (), "input", "is a directory, not a file", mark=Mark(1, 1))
        return None
    except OSError as exc:
        reporter.add(Severity.ERROR, (), "input", f"cannot read the file: {exc.strerror or exc}", mark=Mark(1, 1))
        return None
    try:
        doc = load_yaml(decode(raw))
    except YamlLoadError as exc:
        reporter.add(Severity.ERROR, (), exc.code, exc.message, mark=exc.mark)
        return None
    doc.digest = hashlib.sha256(raw).digest()
    reporter.doc = doc
    for problem in doc.problems:
        reporter.add(Severity.ERROR, (), problem.code, problem.message, mark=problem.mark)
    return doc


def check_schema(schema: str, data: Any, reporter: Reporter, *, quote_values: bool = True) -> bool:
    """Schema violations as `schema` errors; True when the data matches."""
    problems = schema_problems(schema, data, reporter.doc.source_text if reporter.doc is not None else None,
                               quote_values=quote_values)
    for problem in problems:
        reporter.error(problem.path, "schema", problem.message, at_key=problem.at_key)
    return not problems


def build_model(data: Any, reporter: Reporter) -> OrgConfig | None:
    try:
        return OrgConfig.model_validate(data)
    except pydantic.ValidationError as exc:  # the schema should have caught it; report, never trace
        for err in exc.errors():
            reporter.error(tuple(err["loc"]), "schema", err["msg"])
        return None


def load_catalogue_file(path: Path, display: str) -> tuple[list[Service], list[Diagnostic]]:
    """A catalogue file's services, with positioned diagnostics for anything wrong in it.

    An entry with a bundled key replaces the bundled one: the bundled UUIDs are examples, and a catalogue
    imported from the real eToegang service catalog must be able to put the real ones in their place.
    """
    reporter = Reporter(display)
    doc = read_document(path, reporter)
    if doc is None or reporter.has_errors or not check_schema(CATALOGUE_SCHEMA, doc.data, reporter,
                                                              quote_values=False):
        return [], [_unquoted(d) for d in reporter.items]
    services = [Service.from_data(item) for item in doc.data["services"]]
    keys: dict[str, int] = {}
    uuids: dict[str, int] = {}
    for i, service in enumerate(services):
        where = ("services", i)
        if service.key in keys:
            reporter.error(where + ("key",), "catalogue", f"service {service.key!r} is listed twice "
                           f"(first as services[{keys[service.key]}])")
        keys.setdefault(service.key, i)
        if service.uuid in uuids:
            reporter.error(where + ("uuid",), "catalogue", f"UUID {service.uuid} is used twice "
                           f"(first by services[{uuids[service.uuid]}])")
        uuids.setdefault(service.uuid, i)
    return services, reporter.items


_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*'" + r'|"(?:[^"\\\n]|\\.)*"')
_JSON_PATH_PART = re.compile(r"\.([^.\[]+)|\[\d+\]")


def _unquoted(diagnostic: Diagnostic) -> Diagnostic:
    """A diagnostic of a file that is not (yet) a catalogue, without the quoted text of the file: whatever
    `catalogue:` names (a file of secrets, /etc/shadow) must not have its contents echoed. The position stays."""
    if diagnostic.code == "duplicate-key":
        message = "duplicate key; a key may appear once per mapping"
    elif diagnostic.code == "schema":
        message = diagnostic.message                    # already phrased without the data (quote_values=False)
    else:
        message = _QUOTED.sub("(...)", diagnostic.message)
    names = [m.group(1) for m in _JSON_PATH_PART.finditer(diagnostic.json_path) if m.group(1) is not None]
    known = schema_words(CATALOGUE_SCHEMA)
    json_path = diagnostic.json_path if all(n in known for n in names) else "$"
    return replace(diagnostic, message=message, json_path=json_path)


def catalogue_location(config: Path, value: str) -> tuple[Path | None, str | None]:
    """The catalogue file a config's `catalogue: value` names, or why it may not be used.

    A catalogue is part of the configuration under review: it must be in the config's folder or below,
    named by a relative path without `..`, and not a symlink that leads elsewhere. Otherwise a config could
    make reconciler read (and its messages quote) any file the user can read."""
    folder = config.parent
    rule = f"a catalogue must be in the config's folder ({os.path.normpath(folder)}) or below"
    if os.path.isabs(value) or Path(value).is_absolute():
        return None, f"catalogue path {value!r} is absolute; {rule}: write a path relative to it"
    if ".." in Path(value.replace("\\", "/")).parts:
        return None, f"catalogue path {value!r} goes up with '..'; {rule}"
    target = folder / value
    resolved, base = _resolve(target), _resolve(folder)
    if resolved is None or base is None or _kind(target) == "bad":
        return None, f"catalogue path {value!r} is not a usable file name"
    if resolved != base and base not in resolved.parents:
        return None, f"catalogue path {value!r} leads outside the config's folder (through a symlink); {rule}"
    return target, None


def load_paths(paths: Sequence[str], today: dt.date | None) -> LoadResult:
    """Load and check every organisation file under `paths`; all problems of all files are reported.
    `today=None` leaves out what depends on the date (R9), for when the backend's today is not known yet."""
    with gc_paused():
        return _load_paths(paths, today)


def _load_paths(paths: Sequence[str], today: dt.date | None) -> LoadResult:
    files, diagnostics = discover(paths)
    parsed: list[tuple[Path, str, Reporter, YamlDocument]] = []
    for path, display in files:
        reporter = Reporter(display)
        doc = read_document(path, reporter)
        parsed.append((path, display, reporter, doc))  # type: ignore[arg-type]
    # A file named by another file's `catalogue:` is a catalogue, not an organisation.
    catalogue_refs: set[Path] = set()
    for path, _, _, doc in parsed:
        if doc is not None and isinstance(doc.data, dict) and isinstance(doc.data.get("catalogue"), str):
            target, _ = catalogue_location(path, doc.data["catalogue"])
            ref = _resolve(target) if target is not None else None
            if ref is not None and ref != _resolve(path):
                catalogue_refs.add(ref)
    orgs: list[LoadedOrg] = []
    catalogue_cache: dict[Path, tuple[list[Service], list[Diagnostic]]] = {}
    for path, display, reporter, doc in parsed:
        if _resolve(path) in catalogue_refs:
            continue
        diagnostics.extend(reporter.items if doc is None else [])
        if doc is None:
            continue
        if not check_schema(ORG_SCHEMA, doc.data, reporter) or reporter.has_errors:
            diagnostics.extend(reporter.items)
            continue
        config = build_model(doc.data, reporter)
        if config is None:
            diagnostics.extend(reporter.items)
            continue
        catalogue = bundled_catalogue()
        if config.catalogue:
            cat_path, refused = catalogue_location(path, config.catalogue)
            key = _resolve(cat_path) if cat_path is not None else None
            if refused is not None or cat_path is None or key is None:
                reporter.error(("catalogue",), "catalogue", refused or f"catalogue path {config.catalogue!r} is "
                               "not a usable file name")
            elif not cat_path.is_file():
                reporter.error(("catalogue",), "catalogue", f"catalogue file {config.catalogue!r} not found "
                               f"(looked for {os.path.normpath(cat_path)})")
            else:
                if key not in catalogue_cache:
                    catalogue_cache[key] = load_catalogue_file(cat_path, os.path.normpath(cat_path))
                    diagnostics.extend(catalogue_cache[key][1])
                services, cat_diags = catalogue_cache[key]
                if any(d.is_error for d in cat_diags):
                    reporter.error(("catalogue",), "catalogue", f"catalogue file {config.catalogue!r} has errors")
                catalogue = catalogue.extended(services)
        orgs.append(LoadedOrg(path, display, doc, config, catalogue, reporter))
    for org in orgs:
        check_org(org, today)
    check_estate(orgs)
    for org in orgs:
        diagnostics.extend(org.reporter.items)
    order = {display: i for i, (_, display) in enumerate(files)}
    diagnostics.sort(key=lambda d: (order.get(d.path, -1), d.line, d.column, d.code))
    return LoadResult(orgs=orgs, diagnostics=diagnostics, files=len(files))
