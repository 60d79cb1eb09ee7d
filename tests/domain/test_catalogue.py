"""The catalogue model: the bundled services, and the file format `dump_catalogue` writes."""

from __future__ import annotations

from pathlib import Path

import yaml

from reconciler.config.loader import load_catalogue_file
from reconciler.domain.catalogue import Catalogue, Service, bundled_catalogue, dump_catalogue
from reconciler.domain.etoegang import parse_service_catalog
from reconciler.domain.levels import Level

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "etoegang-catalog.xml"


def test_bundled_catalogue_has_the_keys_the_interface_promises() -> None:
    levels = {s.key: s.level for s in bundled_catalogue()}
    assert levels["algemene-bevoegdheid-2plus"] is Level.EH2PLUS
    assert levels["belastingdienst/aangifte-omzetbelasting"] is Level.EH3
    assert bundled_catalogue()["belastingdienst/aangifte-omzetbelasting"].belastingdienst is True
    assert levels["gemeente-baarn/zaaksysteem"] is Level.EH2PLUS


def test_dump_catalogue_writes_the_header_as_comments_and_round_trips() -> None:
    service = Service("uwv/portaal", "00000000-0000-4000-8000-000000000007", "UWV", "Portaal: werkgevers",
                      Level.EH2PLUS, belastingdienst=False)
    text = dump_catalogue([service], header="first line\n\nsecond line")
    assert text.splitlines()[:3] == ["# first line", "#", "# second line"]
    data = yaml.safe_load(text)
    assert [Service.from_data(item) for item in data["services"]] == [service]


def test_imported_sample_written_by_dump_catalogue_loads_without_diagnostics(tmp_path: Path) -> None:
    imported = parse_service_catalog(SAMPLE.read_bytes())
    path = tmp_path / "catalogue.yaml"
    path.write_text(dump_catalogue(imported.services, header="imported"), encoding="utf-8")
    services, diagnostics = load_catalogue_file(path, "catalogue.yaml")
    assert diagnostics == []
    assert services == imported.services
    extended = bundled_catalogue().extended(services)
    assert len(extended) == len(bundled_catalogue()) + 6
    assert extended.by_uuid("5E0B8A1C-7F3D-4E29-B6A4-1C2D3E4F5A02").key == "gemeente-zeist/coordinatieloket-evenementen"


def test_catalogue_suggests_a_close_key() -> None:
    assert Catalogue(bundled_catalogue()).suggest("uwv/werkgeversportal") == "uwv/werkgeversportaal"
