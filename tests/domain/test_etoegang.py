"""Reading eToegang service-catalog XML: structure, levels, keys, duplicates, and refusing unsafe or broken XML."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from reconciler.domain.catalogue import Catalogue, Service, bundled_catalogue
from reconciler.domain.etoegang import CatalogueImportError, KeysMoved, parse_service_catalog, slug
from reconciler.domain.levels import Level

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "etoegang-catalog.xml"

HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<esc:ServiceCatalogue xmlns:esc="urn:etoegang:{version}:service-catalog"'
        ' xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">\n')
TAIL = "</esc:ServiceCatalogue>\n"


def definition(uuid: str, name: str, loa: str = "loa3", *, names: str | None = None) -> str:
    name_xml = names if names is not None else f'<esc:ServiceName xml:lang="nl">{name}</esc:ServiceName>'
    return (f"    <esc:ServiceDefinition>\n"
            f"      <esc:ServiceUUID>{uuid}</esc:ServiceUUID>\n"
            f"      {name_xml}\n"
            f"      <saml:AuthnContextClassRef>urn:etoegang:core:assurance-class:{loa}</saml:AuthnContextClassRef>\n"
            f"    </esc:ServiceDefinition>\n")


def provider(name: str, *definitions: str) -> str:
    return ("  <esc:ServiceProvider>\n"
            "    <esc:ServiceProviderID>00000009000000000042</esc:ServiceProviderID>\n"
            f'    <esc:OrganizationDisplayName xml:lang="nl">{name}</esc:OrganizationDisplayName>\n'
            + "".join(definitions) + "  </esc:ServiceProvider>\n")


def catalog(*providers: str, version: str = "1.13") -> bytes:
    return (HEAD.format(version=version) + "".join(providers) + TAIL).encode("utf-8")


def uuid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


# --- the sample ------------------------------------------------------------------------------------------


def test_sample_parses_into_six_services_of_three_providers() -> None:
    imported = parse_service_catalog(SAMPLE.read_bytes())
    by_key = {s.key: s for s in imported.services}
    assert len(imported.services) == 6
    assert imported.providers == 3
    assert imported.warnings == []
    tax = by_key["belastingdienst/aangifte-vennootschapsbelasting"]
    assert tax.belastingdienst is True and tax.level is Level.EH3 and tax.general is False
    assert tax.name == "Aangifte vennootschapsbelasting"  # nl preferred over the en name listed first
    zeist = by_key["gemeente-zeist/coordinatieloket-evenementen"]
    assert zeist.level is Level.EH2PLUS and zeist.belastingdienst is False
    assert zeist.name == "Coördinatieloket evenementen"
    assert by_key["gemeente-zeist/bedrijfsafval-melden"].uuid == "5e0b8a1c-7f3d-4e29-b6a4-1c2d3e4f5a03"  # lower-cased


def test_sample_service_instances_are_not_services() -> None:
    uuids = {s.uuid for s in parse_service_catalog(SAMPLE.read_bytes()).services}
    assert "0a1b2c3d-0000-4000-8000-00000000a001" not in uuids  # the ServiceInstance's own UUID


# --- levels -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("loa", "level"), [("loa1", Level.EH1), ("loa2", Level.EH2), ("loa2plus", Level.EH2PLUS),
                                            ("loa3", Level.EH3), ("loa4", Level.EH4)])
def test_every_assurance_class_maps_to_its_level(loa: str, level: Level) -> None:
    imported = parse_service_catalog(catalog(provider("Gemeente Baarn", definition(uuid(1), "Loket", loa))))
    assert [s.level for s in imported.services] == [level]


def test_unknown_assurance_class_is_an_error_on_its_line() -> None:
    xml = catalog(provider("Gemeente Baarn", definition(uuid(1), "Loket", "loa5")))
    with pytest.raises(CatalogueImportError) as info:
        parse_service_catalog(xml)
    line = xml.decode().splitlines().index(
        next(l for l in xml.decode().splitlines() if "AuthnContextClassRef" in l)) + 1
    assert info.value.line == line
    assert "urn:etoegang:core:assurance-class:loa5" in info.value.message
    assert "loa2plus" in info.value.message  # says what is allowed


def test_missing_uuid_and_level_are_all_reported() -> None:
    broken = ("    <esc:ServiceDefinition>\n"
              '      <esc:ServiceName xml:lang="nl">Zonder alles</esc:ServiceName>\n'
              "    </esc:ServiceDefinition>\n")
    xml = catalog(provider("Gemeente Baarn", definition(uuid(1), "Goed"), broken,
                           definition("not-a-uuid", "Kapot")))
    with pytest.raises(CatalogueImportError) as info:
        parse_service_catalog(xml)
    messages = [p.message for p in info.value.problems]
    assert any("has no ServiceUUID" in m for m in messages)
    assert any("has no saml:AuthnContextClassRef" in m for m in messages)
    assert any("'not-a-uuid' is not a UUID" in m for m in messages)
    assert all(p.line is not None and p.line > 1 for p in info.value.problems)
    lines = [p.line for p in info.value.problems]
    assert lines == sorted(lines)


def test_missing_service_name_is_an_error() -> None:
    xml = catalog(provider("Gemeente Baarn", definition(uuid(1), "", names="")))
    with pytest.raises(CatalogueImportError, match="has no ServiceName"):
        parse_service_catalog(xml)


def test_other_scheme_versions_are_read() -> None:
    for version in ("1.9", "1.11", "1.13"):
        services = parse_service_catalog(catalog(provider("UWV", definition(uuid(7), "Portaal")),
                                                 version=version)).services
        assert [s.key for s in services] == ["uwv/portaal"]


def test_english_name_is_used_when_there_is_no_dutch_one() -> None:
    names = ('<esc:ServiceName xml:lang="de">Portal</esc:ServiceName>'
             '<esc:ServiceName xml:lang="en">Employer portal</esc:ServiceName>')
    services = parse_service_catalog(catalog(provider("UWV", definition(uuid(7), "", names=names)))).services
    assert services[0].name == "Employer portal"
    assert services[0].key == "uwv/employer-portal"


def test_a_document_that_is_not_a_service_catalog_is_refused() -> None:
    with pytest.raises(CatalogueImportError, match="not an eToegang service catalog") as info:
        parse_service_catalog(b'<?xml version="1.0"?>\n<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"/>')
    assert info.value.line == 2


# --- unsafe and broken XML --------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<esc:ServiceCatalogue xmlns:esc="urn:etoegang:1.13:service-catalog">&lol9;</esc:ServiceCatalogue>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE esc:ServiceCatalogue [ <!ENTITY secret SYSTEM "file:///etc/passwd"> ]>
<esc:ServiceCatalogue xmlns:esc="urn:etoegang:1.13:service-catalog">
  <esc:ServiceProvider><esc:OrganizationDisplayName>&secret;</esc:OrganizationDisplayName></esc:ServiceProvider>
</esc:ServiceCatalogue>
"""


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
def test_dtds_and_entities_are_refused_without_expanding_them(xml: bytes) -> None:
    started = time.monotonic()
    with pytest.raises(CatalogueImportError) as info:
        parse_service_catalog(xml)
    assert time.monotonic() - started < 2
    assert "DTD" in info.value.message and "refused" in info.value.message
    assert info.value.line == 2
    assert "root" not in info.value.message  # refused before the document itself was looked at


def test_an_undeclared_entity_is_a_parse_error_not_a_lookup() -> None:
    xml = b'<esc:ServiceCatalogue xmlns:esc="urn:etoegang:1.13:service-catalog">\n&xxe;</esc:ServiceCatalogue>'
    with pytest.raises(CatalogueImportError, match="undefined entity") as info:
        parse_service_catalog(xml)
    assert info.value.line == 2


@pytest.mark.parametrize(("data", "expected", "line"), [
    (b"", "empty", 1),
    (b"services:\n  - key: a\n", "not well-formed XML", 1),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not well-formed XML", 1),
    (b'<esc:ServiceCatalogue xmlns:esc="urn:etoegang:1.13:service-catalog">\n<esc:ServiceProvider>\n'
     b"</esc:ServiceCatalogue>", "mismatched tag", 3),
])
def test_not_xml_is_an_error_with_a_line(data: bytes, expected: str, line: int) -> None:
    with pytest.raises(CatalogueImportError) as info:
        parse_service_catalog(data)
    assert expected in info.value.message
    assert info.value.line == line


# --- duplicates and keys ----------------------------------------------------------------------------------


def test_duplicate_uuid_keeps_the_first_and_warns() -> None:
    xml = catalog(provider("Gemeente Eemnes", definition(uuid(1), "Zaaksysteem")),
                  provider("Gemeente Soest", definition(uuid(1).upper(), "Zaaksysteem gedeeld"),
                           definition(uuid(2), "Parkeren")))
    imported = parse_service_catalog(xml)
    assert [s.key for s in imported.services] == ["gemeente-eemnes/zaaksysteem", "gemeente-soest/parkeren"]
    assert len(imported.warnings) == 1
    warning = imported.warnings[0]
    assert uuid(1) in warning.message and "Gemeente Eemnes" in warning.message
    assert warning.line is not None and warning.line > 3


def test_services_that_slug_alike_get_the_end_of_their_uuid() -> None:
    xml = catalog(provider("Gemeente Baarn", definition(uuid(1), "Zaak systeem"),
                           definition(uuid(2), "Zaak-Systeem"), definition(uuid(3), "zaak  systeem!"),
                           definition(uuid(4), "Parkeren")))
    imported = parse_service_catalog(xml)
    assert [s.key for s in imported.services] == ["gemeente-baarn/zaak-systeem-00000001",
                                                  "gemeente-baarn/zaak-systeem-00000002",
                                                  "gemeente-baarn/zaak-systeem-00000003", "gemeente-baarn/parkeren"]
    assert len(imported.warnings) == 3
    assert "zaak-systeem-00000002" in imported.warnings[1].message
    assert "another service in this file has the same name" in imported.warnings[1].message


def mapping(xml: bytes, previous: list[Service] | None = None) -> dict[str, tuple[str, Level]]:
    return {s.key: (s.uuid, s.level) for s in parse_service_catalog(xml, previous=previous or []).services}


def test_keys_do_not_depend_on_the_order_of_the_file() -> None:
    """Re-importing the same catalogue in another order must not swap which UUID (and level) a key means."""
    a = definition(uuid(11), "Omgevingsloket", "loa4")
    b = definition(uuid(12), "Omgevingsloket", "loa2")
    c = definition(uuid(13), "Parkeren", "loa2plus")
    other = provider("Gemeente Soest", definition(uuid(14), "Omgevingsloket", "loa3"))
    first = catalog(provider("Gemeente Baarn", a, b, c), other)
    second = catalog(other, provider("Gemeente Baarn", c, b, a))
    assert mapping(first) == mapping(second)
    assert mapping(first)["gemeente-baarn/omgevingsloket-00000011"] == (uuid(11), Level.EH4)
    assert mapping(first)["gemeente-soest/omgevingsloket"] == (uuid(14), Level.EH3)  # its name is its own


def test_a_suffix_grows_until_it_tells_the_services_apart() -> None:
    one, two = "00000000-0000-4000-8000-100000000001", "00000000-0000-4000-8000-200000000001"
    xml = catalog(provider("UWV", definition(two, "Portaal"), definition(one, "Portaal")))
    assert sorted(mapping(xml)) == ["uwv/portaal-100000000001", "uwv/portaal-200000000001"]


def test_a_previous_file_keeps_every_key_on_its_uuid() -> None:
    previous = [Service("gemeente-baarn/omgevingsloket", uuid(12), "Gemeente Baarn", "Omgevingsloket", Level.EH2),
                Service("gemeente-baarn/vergunningen", uuid(13), "Gemeente Baarn", "Vergunningen oud", Level.EH2)]
    xml = catalog(provider("Gemeente Baarn", definition(uuid(11), "Omgevingsloket", "loa4"),
                           definition(uuid(12), "Omgevingsloket", "loa2"),
                           definition(uuid(13), "Vergunningen aanvragen", "loa3")))
    imported = parse_service_catalog(xml, previous=previous)
    keys = {s.uuid: s.key for s in imported.services}
    assert keys == {uuid(12): "gemeente-baarn/omgevingsloket",            # kept, though its name is now shared
                    uuid(11): "gemeente-baarn/omgevingsloket-00000011",   # the newcomer gets the suffix
                    uuid(13): "gemeente-baarn/vergunningen"}              # kept across a rename
    assert "the previous catalogue file keeps it for another ServiceUUID" in imported.warnings[0].message


def test_a_previous_key_that_would_name_another_uuid_is_refused() -> None:
    previous = [Service("gemeente-baarn/omgevingsloket", uuid(12), "Gemeente Baarn", "Omgevingsloket", Level.EH4)]
    xml = catalog(provider("Gemeente Baarn", definition(uuid(21), "Omgevingsloket", "loa2")))
    with pytest.raises(KeysMoved) as info:
        parse_service_catalog(xml, previous=previous)
    [move] = info.value.moves
    assert (move.key, move.old_uuid, move.new.uuid) == ("gemeente-baarn/omgevingsloket", uuid(12), uuid(21))
    assert move.line is not None and move.line > 3
    assert mapping(xml) == {"gemeente-baarn/omgevingsloket": (uuid(21), Level.EH2)}  # without the previous file


def test_a_previous_service_no_longer_listed_is_a_warning() -> None:
    previous = [Service("uwv/oud-portaal", uuid(5), "UWV", "Oud portaal", Level.EH3)]
    imported = parse_service_catalog(catalog(provider("UWV", definition(uuid(7), "Portaal"))), previous=previous)
    assert [s.key for s in imported.services] == ["uwv/portaal"]
    assert len(imported.warnings) == 1
    assert "'uwv/oud-portaal'" in imported.warnings[0].message and uuid(5) in imported.warnings[0].message


@pytest.mark.parametrize("xml", [catalog(), catalog(provider("UWV"))], ids=["no-provider", "no-definition"])
def test_a_catalogue_without_service_definitions_is_refused(xml: bytes) -> None:
    with pytest.raises(CatalogueImportError, match="holds no ServiceDefinition") as info:
        parse_service_catalog(xml)
    assert info.value.line == 2


def test_a_bundled_key_is_kept_so_the_real_uuid_replaces_the_example() -> None:
    xml = catalog(provider("Belastingdienst", definition(uuid(9), "Aangifte omzetbelasting")))
    imported = parse_service_catalog(xml)
    assert [s.key for s in imported.services] == ["belastingdienst/aangifte-omzetbelasting"]
    assert imported.services[0].belastingdienst is True
    assert imported.warnings == []


def test_a_key_known_differently_gets_a_suffix() -> None:
    known = Catalogue([Service("uwv/portaal", uuid(8), "UWV", "Portaal", Level.EH3)])
    imported = parse_service_catalog(catalog(provider("UWV", definition(uuid(7), "Portaal"))), known=known)
    assert [s.key for s in imported.services] == ["uwv/portaal-00000007"]
    assert "uwv/portaal-00000007" in imported.warnings[0].message


def test_a_key_identical_to_a_known_service_is_kept() -> None:
    known = Catalogue([Service("uwv/portaal", uuid(7), "UWV", "Portaal", Level.EH3)])
    imported = parse_service_catalog(catalog(provider("UWV", definition(uuid(7), "Portaal"))), known=known)
    assert [s.key for s in imported.services] == ["uwv/portaal"]
    assert imported.warnings == []


@pytest.mark.parametrize(("text", "expected"), [
    ("Gemeente Zoëterwoude", "gemeente-zoeterwoude"),
    ("Coördinatie & Café-beheer", "coordinatie-cafe-beheer"),
    ("  RVO.nl  ", "rvo-nl"),
    ("Straße", "strasse"),
    ("---", ""),
])
def test_slug(text: str, expected: str) -> None:
    assert slug(text) == expected


def test_keys_match_the_catalogue_schema_even_for_odd_names() -> None:
    pattern = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$")
    xml = catalog(provider("Ø &amp; Æ", definition(uuid(1), "???"), definition(uuid(2), "x" * 300)))
    keys = [s.key for s in parse_service_catalog(xml).services]
    assert all(pattern.match(k) and len(k) <= 200 for k in keys), keys
    assert keys[0] == "o-ae/service"


def test_belastingdienst_flag_follows_the_provider_name() -> None:
    xml = catalog(provider("Belastingdienst", definition(uuid(1), "Loonaangifte 2030")),
                  provider("Gemeente Baarn", definition(uuid(2), "Belastingdienst koppeling")))
    flags = {s.provider: s.belastingdienst for s in parse_service_catalog(xml).services}
    assert flags == {"Belastingdienst": True, "Gemeente Baarn": False}


def test_bundled_catalogue_is_not_changed_by_an_import() -> None:
    before = len(bundled_catalogue())
    parse_service_catalog(SAMPLE.read_bytes())
    assert len(bundled_catalogue()) == before
