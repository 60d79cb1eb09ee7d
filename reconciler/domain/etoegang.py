"""Reading an eToegang service-catalog XML (the Dienstencatalogus) into catalogue services.

The XML comes from outside (a broker, a download, an e-mail), so it is parsed only with defusedxml and
with DTDs refused outright: a service catalogue never needs one, and refusing the DOCTYPE stops entity
bombs and external entities before anything is expanded or fetched. Every problem becomes a
`CatalogueImportError` with a line number, never a traceback.

Structure read (local names; any `urn:etoegang:<version>:service-catalog` namespace, 1.9 .. 1.13)::

    ServiceCatalogue
      ServiceProvider            OrganizationDisplayName (xml:lang), ServiceProviderID
        ServiceDefinition        ServiceUUID, ServiceName (xml:lang), saml:AuthnContextClassRef
        ServiceInstance          ignored: its ServiceUUID names an instance, not what authorisations are on
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Sequence
from xml.etree.ElementTree import Element, TreeBuilder  # tree building only; parsing goes through defusedxml

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser, ParseError

from reconciler.domain.catalogue import Catalogue, Service
from reconciler.domain.levels import level_from_loa_urn

SERVICE_CATALOG_NS = "urn:etoegang:1.13:service-catalog"
SAML_ASSERTION_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

_ESC_NS = re.compile(r"^urn:etoegang:[^:]+:service-catalog$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
#: Longest slug of one key part; the catalogue schema allows 200 characters for the whole key.
_MAX_SLUG = 90
_LANG_PREFERENCE = ("nl", "en")


class CatalogueImportError(ValueError):
    """A service-catalog XML that cannot be imported; `line` is 1-based when known.

    `more` holds further problems found in the same file, so a user can fix them all in one go.
    """

    def __init__(self, message: str, line: int | None = None,
                 more: Sequence["CatalogueImportError"] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.more = tuple(more)

    @property
    def problems(self) -> tuple["CatalogueImportError", ...]:
        """This problem and every further one, in file order."""
        return (self, *self.more)

    def where(self, display: str) -> str:
        return f"{display}:{self.line}" if self.line else display

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class CertificateUnreadable(ValueError):
    """The --cert file is not an X.509 certificate in PEM (or DER); the message says what was found.

    Defined here, not beside the check, so callers can catch it without importing signxml (60 ms)."""


class SignatureRefused(ValueError):
    """The catalogue's signature is missing, invalid, or does not cover the catalogue; the message says which."""


@dataclass(frozen=True, slots=True)
class CatalogueWarning:
    """Something imported with a change the user should know about (a dropped duplicate, a renamed key)."""

    message: str
    line: int | None = None


@dataclass
class ImportedCatalogue:
    """The services read from one service-catalog XML, and what was adjusted on the way."""

    services: list[Service]
    warnings: list[CatalogueWarning] = field(default_factory=list)

    @property
    def providers(self) -> int:
        return len({s.provider for s in self.services})


def slug(text: str) -> str:
    """`Gemeente Zoëterwoude (KCC)` -> `gemeente-zoeterwoude-kcc`: lower-case ASCII, a key part configs can write."""
    folded = unicodedata.normalize("NFKD", text.replace("ß", "ss").replace("æ", "ae").replace("Æ", "ae")
                                   .replace("ø", "o").replace("Ø", "o").replace("ł", "l").replace("Ł", "l"))
    ascii_text = folded.encode("ascii", "ignore").decode("ascii").lower()
    collapsed = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    return collapsed[:_MAX_SLUG].rstrip("-")


def parse_service_catalog(data: bytes | str, known: Catalogue | None = None,
                          previous: Iterable[Service] = ()) -> ImportedCatalogue:
    """Services of an eToegang service-catalog XML; raises CatalogueImportError with every problem found.

    Keys do not depend on the order of the file: a service whose `provider/name` slug is shared (by another
    service in the file, or by a `known` service with other details) gets a suffix from its own ServiceUUID.
    `previous` (an earlier import of this catalogue) keeps every key on its UUID; a previous key that this
    import would give to another UUID raises `KeysMoved`, so a config's key never silently changes meaning.
    The bundled catalogue is not "known" here: its UUIDs are examples, and an imported catalogue file
    replaces bundled entries with the same key (the real UUIDs win).
    """
    root, lines = _parse_xml(data)
    line_of = lines.get
    if _local(root.tag) not in ("ServiceCatalogue", "ServiceCatalog") or not _is_esc(root):
        raise CatalogueImportError(
            f"not an eToegang service catalog: the root element is {_display_tag(root.tag)}; expected "
            f"ServiceCatalogue in namespace {SERVICE_CATALOG_NS} (or another urn:etoegang:*:service-catalog)",
            line_of(root))

    problems: list[CatalogueImportError] = []
    found: list[tuple[Service, int | None]] = []
    definitions = 0
    for provider_el in _children(root, "ServiceProvider"):
        provider = _provider_name(provider_el)
        if provider is None:
            problems.append(CatalogueImportError(
                "ServiceProvider has neither an OrganizationDisplayName nor a ServiceProviderID",
                line_of(provider_el)))
            continue
        for definition in _children(provider_el, "ServiceDefinition"):
            definitions += 1
            service = _service(definition, provider, line_of, problems)
            if service is not None:
                found.append((service, line_of(definition)))
    if problems:
        raise CatalogueImportError(problems[0].message, problems[0].line, problems[1:])
    if not definitions:
        # Written out, an empty catalogue would replace a good one and break every config naming its keys.
        raise CatalogueImportError(
            "the file holds no ServiceDefinition: an empty catalogue is not imported (is it the right file, "
            "and complete?)", line_of(root))

    warnings: list[CatalogueWarning] = []
    unique = _drop_duplicate_uuids(found, warnings)
    services = _assign_keys(unique, known if known is not None else Catalogue(), list(previous), warnings)
    return ImportedCatalogue(services=services, warnings=warnings)


def check_xml_is_safe(data: bytes | str) -> None:
    """Raise CatalogueImportError for XML that is not well-formed or declares a DTD or entities: the gate any
    other reader of the same bytes (the signature check's lxml) goes through first."""
    _parse_xml(data)


# --- XML ------------------------------------------------------------------------------------------------


class _LineTreeBuilder:
    """A TreeBuilder target that remembers each element's start line (ElementTree forgets positions)."""

    def __init__(self) -> None:
        self._builder = TreeBuilder()
        self.parser: Any = None  # the expat parser, set once the XMLParser exists
        self.lines: dict[Element, int] = {}

    def start(self, tag: str, attrib: dict[str, str]) -> Element:
        element = self._builder.start(tag, attrib)
        self.lines[element] = self.parser.CurrentLineNumber
        return element

    def end(self, tag: str) -> Element:
        return self._builder.end(tag)

    def data(self, text: str) -> None:
        self._builder.data(text)

    def close(self) -> Element:
        return self._builder.close()


def _parse_xml(data: bytes | str) -> tuple[Element, dict[Element, int]]:
    """The document's root and element lines, through defusedxml with DTDs, entities and externals refused."""
    if not (data.strip() if isinstance(data, str) else data.strip(b" \t\r\n\x00\xef\xbb\xbf")):
        raise CatalogueImportError("the file is empty; expected an eToegang service-catalog XML", 1)
    target = _LineTreeBuilder()
    parser = DefusedXMLParser(target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    target.parser = parser.parser
    try:
        parser.feed(data)
        root = parser.close()
    except DTDForbidden:
        raise CatalogueImportError(
            "the XML declares a DTD (<!DOCTYPE ...>), which is refused: entity definitions can blow up "
            "or fetch files; a service catalog needs no DTD", _line(parser)) from None
    except EntitiesForbidden:
        raise CatalogueImportError("the XML defines entities, which are refused", _line(parser)) from None
    except ExternalReferenceForbidden:
        raise CatalogueImportError("the XML refers to an external entity, which is refused",
                                   _line(parser)) from None
    except DefusedXmlException as exc:
        raise CatalogueImportError(f"unsafe XML refused: {type(exc).__name__}", _line(parser)) from None
    except ParseError as exc:
        line, column = exc.position if exc.position else (None, None)
        reason = re.sub(r":\s*line \d+, column \d+$", "", str(exc))
        where = f" (column {column + 1})" if column is not None else ""
        raise CatalogueImportError(f"not well-formed XML: {reason}{where}", line) from None
    except (UnicodeError, LookupError, ValueError) as exc:  # e.g. an encoding expat does not know
        raise CatalogueImportError(f"cannot read the XML: {exc}", _line(parser)) from None
    return root, target.lines


def _line(parser: DefusedXMLParser) -> int | None:
    try:
        return int(parser.parser.CurrentLineNumber)
    except Exception:  # the expat parser may already be gone
        return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _is_esc(element: Element) -> bool:
    return bool(_ESC_NS.match(_namespace(element.tag)))


def _display_tag(tag: str) -> str:
    namespace = _namespace(tag)
    return f"<{_local(tag)}> in namespace {namespace}" if namespace else f"<{_local(tag)}> without a namespace"


def _children(element: Element, local: str) -> list[Element]:
    return [child for child in element if _local(child.tag) == local and _is_esc(child)]


def _text(element: Element) -> str:
    return " ".join("".join(element.itertext()).split())


def _preferred(elements: Iterable[Element]) -> str | None:
    """The text in Dutch, else English, else the first language given (empty texts do not count)."""
    texts = [(element.get(XML_LANG, "").lower(), _text(element)) for element in elements]
    texts = [(lang, text) for lang, text in texts if text]
    for wanted in _LANG_PREFERENCE:
        for lang, text in texts:
            if lang == wanted or lang.startswith(wanted + "-"):
                return text
    return texts[0][1] if texts else None


# --- services -------------------------------------------------------------------------------------------


def _provider_name(provider: Element) -> str | None:
    name = _preferred(_children(provider, "OrganizationDisplayName"))
    if name:
        return name
    ids = [_text(e) for e in _children(provider, "ServiceProviderID") if _text(e)]
    return ids[0] if ids else None


def _service(definition: Element, provider: str, line_of: Callable[[Element], int | None],
             problems: list[CatalogueImportError]) -> Service | None:
    """One ServiceDefinition as a service without its final key; problems are appended, not raised."""
    line = line_of(definition)
    uuid_els = _children(definition, "ServiceUUID")
    uuid = _text(uuid_els[0]) if uuid_els else ""
    name = _preferred(_children(definition, "ServiceName"))
    label = f"ServiceDefinition {name!r} of {provider}" if name else f"a ServiceDefinition of {provider}"
    ok = True
    if not uuid:
        problems.append(CatalogueImportError(f"{label} has no ServiceUUID", line))
        ok = False
    elif not _UUID.match(uuid):
        problems.append(CatalogueImportError(
            f"{label}: ServiceUUID {uuid!r} is not a UUID (8-4-4-4-12 hexadecimal digits)", line_of(uuid_els[0])))
        ok = False
    if not name:
        problems.append(CatalogueImportError(f"{label} has no ServiceName", line))
        ok = False
    refs = [child for child in definition if _local(child.tag) == "AuthnContextClassRef"
            and (_namespace(child.tag) == SAML_ASSERTION_NS or _is_esc(child))]
    level = None
    if not refs:
        problems.append(CatalogueImportError(
            f"{label} has no saml:AuthnContextClassRef (its minimum level of assurance)", line))
        ok = False
    elif len(refs) > 1:
        problems.append(CatalogueImportError(
            f"{label} has {len(refs)} AuthnContextClassRef elements; a service has one minimum level",
            line_of(refs[1])))
        ok = False
    else:
        try:
            level = level_from_loa_urn(_text(refs[0]))
        except ValueError as exc:
            problems.append(CatalogueImportError(f"{label}: {exc}", line_of(refs[0])))
            ok = False
    if not ok or level is None or name is None:
        return None
    return Service(key="", uuid=uuid.lower(), provider=provider, name=name, level=level,
                   belastingdienst=provider.casefold() == "belastingdienst", general=False)


def _drop_duplicate_uuids(found: list[tuple[Service, int | None]],
                          warnings: list[CatalogueWarning]) -> list[tuple[Service, int | None]]:
    """Keep the first service per UUID: authorisations are registered on the UUID, so one entry suffices."""
    first: dict[str, tuple[Service, int | None]] = {}
    kept: list[tuple[Service, int | None]] = []
    for service, line in found:
        if service.uuid in first:
            earlier, earlier_line = first[service.uuid]
            at = f" (line {earlier_line})" if earlier_line else ""
            warnings.append(CatalogueWarning(
                f"ServiceUUID {service.uuid} ({service.provider}: {service.name}) was already listed for "
                f"{earlier.provider}: {earlier.name}{at}; kept that one, skipped this one", line))
            continue
        first[service.uuid] = (service, line)
        kept.append((service, line))
    return kept


@dataclass(frozen=True, slots=True)
class KeyMove:
    """A previous key that this import would give to another ServiceUUID."""

    key: str
    old_uuid: str
    new: Service
    line: int | None


class KeysMoved(Exception):
    """Keys of the previous catalogue file that would name other services after this import."""

    def __init__(self, moves: Sequence[KeyMove]) -> None:
        super().__init__(f"{len(moves)} key(s) would name another ServiceUUID")
        self.moves = tuple(moves)


#: Hex digits of the ServiceUUID (from its end) that tell services with the same name apart; more when needed.
_SUFFIX_DIGITS = 8


def _base_key(service: Service) -> str:
    return f"{slug(service.provider) or 'provider'}/{slug(service.name) or 'service'}"


def _assign_keys(found: list[tuple[Service, int | None]], known: Catalogue, previous: list[Service],
                 warnings: list[CatalogueWarning]) -> list[Service]:
    """Keys that depend on the services, never on their order in the file.

    1. A service listed in `previous` keeps its key there.
    2. Every other service gets its `provider/name` slug, unless another service of this file derives the
       same slug, a kept key or a `known` service with other details has it: then it gets `-` and the last
       hex digits of its ServiceUUID (8, more when 8 do not tell the group apart).
    A previous key whose UUID is gone and that a new service would get raises `KeysMoved` (one per key).
    """
    old_key_of = {s.uuid: s.key for s in previous}
    old_uuid_of = {s.key: s.uuid for s in previous}
    present = {service.uuid for service, _ in found}
    kept = {service.uuid: old_key_of[service.uuid] for service, _ in found if service.uuid in old_key_of}
    kept_keys = set(kept.values())
    fresh = [(service, line) for service, line in found if service.uuid not in kept]
    groups: dict[str, list[tuple[Service, int | None]]] = {}
    for service, line in fresh:
        groups.setdefault(_base_key(service), []).append((service, line))

    keys: dict[str, str] = dict(kept)          # uuid -> key
    reasons: dict[str, str] = {}
    plain = {base for base, members in groups.items() if len(members) == 1
             and base not in kept_keys and not _taken(known, base, members[0][0])}
    for base, members in sorted(groups.items()):
        if base in plain:
            keys[members[0][0].uuid] = base
            continue
        taken = kept_keys | plain | {k for k in keys.values()}
        digits = _SUFFIX_DIGITS
        while True:
            suffixes = {service.uuid: service.uuid.replace("-", "")[-digits:] for service, _ in members}
            candidates = {uuid: f"{base}-{suffix}" for uuid, suffix in suffixes.items()}
            if (len(set(candidates.values())) == len(members) and not (set(candidates.values()) & taken)
                    and not any(_taken(known, key, service) for service, _ in members
                                for key in [candidates[service.uuid]])) or digits >= 32:
                break
            digits += 1
        keys.update(candidates)
        why = ("another service in this file has the same name" if len(members) > 1
               else "the previous catalogue file keeps it for another ServiceUUID" if base in kept_keys
               else "the bundled catalogue already has it with other details")
        for service, _ in members:
            reasons[service.uuid] = why

    moves = [KeyMove(key, old_uuid_of[key], service, line) for service, line in fresh
             for key in [keys[service.uuid]] if key in old_uuid_of and old_uuid_of[key] != service.uuid]
    if moves:
        raise KeysMoved(moves)
    for gone in previous:
        if gone.uuid not in present:
            warnings.append(CatalogueWarning(
                f"key {gone.key!r} ({gone.provider}: {gone.name}, ServiceUUID {gone.uuid}) of the previous "
                "catalogue file is not in this catalogue any more; configs naming it will not validate"))
    services: list[Service] = []
    for service, line in found:
        key = keys[service.uuid]
        if service.uuid in reasons:
            warnings.append(CatalogueWarning(
                f"{service.provider}: {service.name} got key {key!r}, not {_base_key(service)!r}: "
                f"{reasons[service.uuid]} (the suffix ends its ServiceUUID, so it stays put on re-import)", line))
        services.append(replace(service, key=key))
    return services


def _taken(known: Catalogue, key: str, service: Service) -> bool:
    existing = known.get(key)
    return existing is not None and existing != replace(service, key=key)
