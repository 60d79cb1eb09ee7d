"""`reconciler catalogue list` and `reconciler catalogue import`, through the real command line."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from reconciler.cli.main import cli
from reconciler.config.loader import load_catalogue_file

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "etoegang-catalog.xml"

#: The keys INTERFACE.md promises in the bundled catalogue, with their levels.
PROMISED = {
    "algemene-bevoegdheid-1": "EH1", "algemene-bevoegdheid-2": "EH2", "algemene-bevoegdheid-2plus": "EH2+",
    "algemene-bevoegdheid-3": "EH3", "algemene-bevoegdheid-4": "EH4",
    "belastingdienst/aangifte-omzetbelasting": "EH3", "uwv/werkgeversportaal": "EH3", "rvo/tenderned": "EH2",
    "gemeente-baarn/zaaksysteem": "EH2+", "mijn-overheid/ondernemers": "EH2+",
    "wij-techniek/account-verificatie": "EH3", "ienw/asbestvolgsysteem": "EH3",
}

ORG = """version: 1
organisation:
  kvk: "99966564"
  name: Ketelaar Klip
catalogue: {catalogue}
users:
  - email: j.bakker@ketelaarklip.nl
    name: J. Bakker
    role: beheerder
    level: EH3
"""


def run(*args: str) -> Result:
    """Invoke the real `reconciler` group, so exit codes go through its ReconcilerGroup handling."""
    try:
        runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2
    except TypeError:
        runner = CliRunner()  # click >= 8.2 keeps stderr apart by itself
    return runner.invoke(cli, list(args), catch_exceptions=False)


# --- list -------------------------------------------------------------------------------------------------


def test_list_text_shows_every_promised_key_with_its_level() -> None:
    result = run("catalogue", "list")
    assert result.exit_code == 0, result.stderr
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[:-1]}
    for key, level in PROMISED.items():
        assert rows.get(key) == level, key
    assert re.fullmatch(r"\d+ services", result.stdout.splitlines()[-1])
    assert "[Belastingdienst]" in next(l for l in result.stdout.splitlines() if l.startswith("belastingdienst/"))


def test_list_json_is_a_list_of_services_with_the_promised_keys() -> None:
    result = run("catalogue", "list", "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    levels = {item["key"]: item["level"] for item in data}
    assert PROMISED.items() <= levels.items()
    assert all({"key", "uuid", "provider", "name", "level"} <= item.keys() for item in data)


def test_list_with_a_catalogue_file_adds_its_services(tmp_path: Path) -> None:
    out = tmp_path / "catalogue.yaml"
    assert run("catalogue", "import", str(SAMPLE), "--out", str(out)).exit_code == 0
    result = run("catalogue", "list", "--format", "json", "--catalogue", str(out))
    assert result.exit_code == 0, result.stderr
    keys = {item["key"] for item in json.loads(result.stdout)}
    assert "gemeente-zeist/coordinatieloket-evenementen" in keys
    assert set(PROMISED) <= keys


def test_list_with_a_bad_catalogue_file_prints_positioned_errors_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  - key: uwv/portaal\n    uuid: not-a-uuid\n    provider: UWV\n"
                   "    name: Portaal\n    level: EH5\n", encoding="utf-8")
    result = run("catalogue", "list", "--catalogue", str(bad))
    assert result.exit_code == 1
    assert result.stdout == ""
    errors = result.stderr.splitlines()
    assert any(re.fullmatch(re.escape(str(bad)) + r":3:11: error\[schema\]: .*uuid.*", e) for e in errors), errors
    assert any(re.fullmatch(re.escape(str(bad)) + r":6:12: error\[schema\]: .*", e) for e in errors), errors
    assert "Traceback" not in result.stderr


def test_list_with_a_missing_catalogue_file_exits_1(tmp_path: Path) -> None:
    result = run("catalogue", "list", "--catalogue", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 1
    assert f"{tmp_path / 'nope.yaml'}:1:1: error[input]:" in result.stderr


def test_list_with_a_config_shows_its_catalogue(tmp_path: Path) -> None:
    assert run("catalogue", "import", str(SAMPLE), "--out", str(tmp_path / "cat.yaml")).exit_code == 0
    org = tmp_path / "org.yaml"
    org.write_text(ORG.format(catalogue="cat.yaml"), encoding="utf-8")
    result = run("catalogue", "list", "--config", str(org))
    assert result.exit_code == 0, result.stderr
    assert "belastingdienst/aangifte-vennootschapsbelasting" in result.stdout
    assert "uwv/werkgeversportaal" in result.stdout


def test_list_with_a_config_whose_catalogue_is_bad_exits_1(tmp_path: Path) -> None:
    (tmp_path / "cat.yaml").write_text("services: {}\n", encoding="utf-8")
    org = tmp_path / "org.yaml"
    org.write_text(ORG.format(catalogue="cat.yaml"), encoding="utf-8")
    result = run("catalogue", "list", "--config", str(org))
    assert result.exit_code == 1
    assert re.search(r"cat\.yaml:1:\d+: error\[schema\]", result.stderr), result.stderr
    assert f"{org}:5:12: error[catalogue]:" in result.stderr


# --- import -----------------------------------------------------------------------------------------------


def test_import_writes_a_file_that_loads_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "catalogue.yaml"
    result = run("catalogue", "import", str(SAMPLE), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"6 services from 3 providers, written to {out}"
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Imported from etoegang-catalog.xml on ")
    assert dt.date.today().isoformat() in text.splitlines()[0]
    services, diagnostics = load_catalogue_file(out, str(out))
    assert diagnostics == []
    by_key = {s.key: s for s in services}
    assert by_key["gemeente-zeist/coordinatieloket-evenementen"].level.value == "EH2+"
    assert by_key["belastingdienst/aangifte-vennootschapsbelasting"].belastingdienst is True
    assert len(services) == 6


def test_import_without_out_writes_yaml_to_stdout_and_the_summary_to_stderr() -> None:
    result = run("catalogue", "import", str(SAMPLE))
    assert result.exit_code == 0, result.stderr
    data = yaml.safe_load(result.stdout)
    assert len(data["services"]) == 6
    assert "6 services from 3 providers" in result.stderr


def test_import_with_key_clashes_still_loads_cleanly(tmp_path: Path) -> None:
    xml = tmp_path / "clash.xml"
    xml.write_text(
        '<esc:ServiceCatalogue xmlns:esc="urn:etoegang:1.11:service-catalog" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">'
        "<esc:ServiceProvider><esc:OrganizationDisplayName>Belastingdienst</esc:OrganizationDisplayName>"
        + "".join(f"<esc:ServiceDefinition><esc:ServiceUUID>00000000-0000-4000-8000-00000000000{i}</esc:ServiceUUID>"
                  f"<esc:ServiceName>Aangifte {spelling}</esc:ServiceName><saml:AuthnContextClassRef>"
                  "urn:etoegang:core:assurance-class:loa3</saml:AuthnContextClassRef></esc:ServiceDefinition>"
                  for i, spelling in enumerate(["omzetbelasting", "Omzetbelasting!", "omzetbelasting"]))
        + "</esc:ServiceProvider></esc:ServiceCatalogue>", encoding="utf-8")
    out = tmp_path / "catalogue.yaml"
    result = run("catalogue", "import", str(xml), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("got key ") == 3
    services, diagnostics = load_catalogue_file(out, str(out))
    assert diagnostics == []
    # all three share a name, so each gets the end of its own UUID, whatever their order in the file
    assert sorted(s.key for s in services) == [
        f"belastingdienst/aangifte-omzetbelasting-0000000{n}" for n in (0, 1, 2)]


def test_import_with_a_duplicate_uuid_warns_and_keeps_one(tmp_path: Path) -> None:
    text = SAMPLE.read_text(encoding="utf-8").replace("5e0b8a1c-7f3d-4e29-b6a4-1c2d3e4f5a06",
                                                       "5e0b8a1c-7f3d-4e29-b6a4-1c2d3e4f5a05")
    xml = tmp_path / "dup.xml"
    xml.write_text(text, encoding="utf-8")
    result = run("catalogue", "import", str(xml), "--out", str(tmp_path / "c.yaml"))
    assert result.exit_code == 0
    assert re.search(re.escape(str(xml)) + r":\d+: .*5e0b8a1c-7f3d-4e29-b6a4-1c2d3e4f5a05.*already listed",
                     result.stderr), result.stderr
    assert "5 services from 3 providers" in result.stdout


@pytest.mark.parametrize(("content", "message", "line"), [
    (b"this is not xml\n", "not well-formed XML", 1),
    (b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "b">]>\n<x/>', "DTD", 2),
    (b'<esc:ServiceCatalogue xmlns:esc="urn:etoegang:1.13:service-catalog" '
     b'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">\n<esc:ServiceProvider>\n'
     b"<esc:OrganizationDisplayName>UWV</esc:OrganizationDisplayName>\n<esc:ServiceDefinition>\n"
     b"<esc:ServiceUUID>00000000-0000-4000-8000-000000000001</esc:ServiceUUID>\n"
     b"<esc:ServiceName>Portaal</esc:ServiceName>\n"
     b"<saml:AuthnContextClassRef>urn:etoegang:core:assurance-class:high</saml:AuthnContextClassRef>\n"
     b"</esc:ServiceDefinition></esc:ServiceProvider></esc:ServiceCatalogue>", "unknown assurance class", 7),
])
def test_import_errors_are_one_line_with_file_and_line(tmp_path: Path, content: bytes, message: str,
                                                       line: int) -> None:
    xml = tmp_path / "in.xml"
    xml.write_bytes(content)
    out = tmp_path / "out.yaml"
    result = run("catalogue", "import", str(xml), "--out", str(out))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {xml}:{line}: ")
    assert message in lines[0]
    assert not out.exists()
    assert "Traceback" not in result.stderr


def test_import_of_a_missing_file_exits_1(tmp_path: Path) -> None:
    result = run("catalogue", "import", str(tmp_path / "nope.xml"))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {tmp_path / 'nope.xml'}: cannot read the file")
