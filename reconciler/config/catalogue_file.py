"""The catalogue files beneath `reconciler catalogue`: which services a config can name (the bundled catalogue,
a catalogue file, an organisation file's own), and a catalogue file's text made from eToegang's service-catalog
XML (`domain.etoegang` parses it).

Nothing here prints or exits: a bad file comes back as its positioned diagnostics or as an exception whose
message is what the command prints.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from reconciler.config.loader import load_catalogue_file, load_paths, read_capped
from reconciler.diagnostics import Diagnostic
from reconciler.domain.catalogue import Catalogue, Service, bundled_catalogue, dump_catalogue
from reconciler.domain.etoegang import CertificateUnreadable, parse_service_catalog

if TYPE_CHECKING:
    from cryptography import x509

#: The largest eToegang service-catalog XML read (the real one is a few MB).
MAX_XML_BYTES = 64 * 1024 * 1024
#: The largest --cert file read (a certificate, perhaps with its chain, is a few kB).
MAX_CERT_BYTES = 1024 * 1024


class NotOneOrganisation(Exception):
    """`--config` names a folder or file holding several organisation files: which one's catalogue is meant?"""


class XmlUnreadable(Exception):
    """The service-catalog XML cannot be read (or is too large); the message follows the file's name."""


@dataclass
class Listing:
    """The catalogue to list (None when a file is bad: nothing is listed) and the diagnostics to show first."""

    catalogue: Catalogue | None
    diagnostics: list[Diagnostic] = field(default_factory=list)


def catalogue_for(catalogue_file: str | None, config_file: str | None, today: dt.date | None = None) -> Listing:
    """The bundled catalogue, extended by an organisation file's own and by a catalogue file, as the options
    say; a catalogue file's warnings are shown, a bad file's errors stop the listing."""
    result = bundled_catalogue()
    if config_file is not None:
        loaded = load_paths([config_file], today or dt.date.today())
        if not loaded.orgs:
            return Listing(None, [d for d in loaded.diagnostics if d.is_error])
        if len(loaded.orgs) > 1:
            raise NotOneOrganisation(f"{config_file}: holds {len(loaded.orgs)} organisation files; name one")
        org = loaded.orgs[0]
        # Only problems with the catalogue matter here; the rest is `reconciler validate`'s business.
        problems = [d for d in loaded.diagnostics if d.is_error and
                    (d.path != org.display or d.json_path.startswith("$.catalogue"))]
        if problems:
            return Listing(None, problems)
        result = org.catalogue
    if catalogue_file is None:
        return Listing(result)
    services, diagnostics = load_catalogue_file(Path(catalogue_file), catalogue_file)
    if any(d.is_error for d in diagnostics):
        return Listing(None, diagnostics)
    return Listing(result.extended(services), diagnostics)


@dataclass
class CatalogueFromXml:
    """A catalogue file's text made from a service-catalog XML, its summary, and `where: what` warnings."""

    text: str
    summary: str
    warnings: list[str]
    verified: bool = False                      # the XML signature was checked against --cert


class PreviousInvalid(Exception):
    """The previous catalogue file (--previous, or the --out file being replaced) cannot be read as one;
    `diagnostics` are its positioned errors."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__(f"{len(diagnostics)} problem(s)")
        self.diagnostics = diagnostics


def previous_services(previous_file: str) -> list[Service]:
    """The services of an earlier import, whose keys the new import keeps on their UUIDs; `PreviousInvalid`
    when the file is not a clean catalogue file (keeping keys from a broken file would be guessing)."""
    services, diagnostics = load_catalogue_file(Path(previous_file), previous_file)
    errors = [d for d in diagnostics if d.is_error]
    if errors:
        raise PreviousInvalid(errors)
    return services


def read_certificate(cert_file: str) -> x509.Certificate:
    """The aggregator's signing certificate; `CertificateUnreadable` (its message follows the file's name)."""
    from reconciler.domain.etoegang_signature import load_certificate     # signxml: 60 ms, only when asked

    try:
        raw = read_capped(Path(cert_file), MAX_CERT_BYTES)
    except OSError as exc:
        raise CertificateUnreadable(f"certificate unreadable: cannot read the file: {exc.strerror or exc}") from None
    if len(raw) > MAX_CERT_BYTES:
        raise CertificateUnreadable(f"certificate unreadable: larger than {MAX_CERT_BYTES:,} bytes; a certificate "
                                    "is a few kB")
    return load_certificate(raw)


def catalogue_from_xml(xml_file: str, today: dt.date | None = None, previous: Iterable[Service] = (),
                       certificate: x509.Certificate | None = None) -> CatalogueFromXml:
    """Read and convert `xml_file`, keeping `previous` keys on their UUIDs and, with `certificate`, refusing a
    catalogue whose signature does not hold; raises `XmlUnreadable`, `CatalogueImportError` (every problem),
    `SignatureRefused` or `KeysMoved` when it cannot be imported."""
    try:
        raw = read_capped(Path(xml_file), MAX_XML_BYTES)     # /dev/zero or a pipe must not fill memory
    except OSError as exc:
        raise XmlUnreadable(f"cannot read the file: {exc.strerror or exc}") from None
    if len(raw) > MAX_XML_BYTES:
        raise XmlUnreadable(f"file is larger than {MAX_XML_BYTES:,} bytes; a service catalog of that size is "
                            "not accepted")
    if certificate is not None:
        from reconciler.domain.etoegang_signature import verify_catalogue_signature

        verify_catalogue_signature(raw, certificate)         # before the contents are trusted for anything
    imported = parse_service_catalog(raw, previous=previous)
    warnings = [f"{xml_file}:{w.line}: {w.message}" if w.line else f"{xml_file}: {w.message}"
                for w in imported.warnings]
    verified = ("its XML signature was verified (--cert)" if certificate
                else "its XML signature was NOT verified (no --cert)")
    header = (f"Imported from {os.path.basename(xml_file)} on {(today or dt.date.today()).isoformat()} "
              f"by `reconciler catalogue import`;\n{verified}.\n"
              "Keys come from the provider and service names; services sharing a name get the end of their "
              "ServiceUUID.\nA re-import keeps every key of this file on its UUID. Review the keys before "
              "configs name them.")
    text = dump_catalogue(sorted(imported.services, key=lambda s: s.key), header=header)
    return CatalogueFromXml(text, f"{len(imported.services)} services from {imported.providers} providers",
                            warnings, verified=certificate is not None)
