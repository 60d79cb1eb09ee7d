"""`reconciler report access` end to end on the embedded sandbox: the example applied and converged is
reported in full as declared, a hand-made grant as not in config; every format; errors exit 1."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.main import cli
from reconciler.config.loader import load_paths
from reconciler.plan.desired import desired_org
from reconciler.report.render_access import CSV_HEADER

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "org.yaml"
KVK = "99966564"


def invoke(*args: str) -> tuple[int, bytes, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout_bytes, result.stderr


def declared_pairs() -> set[tuple[str, str]]:
    """(person, service key) of every authorisation the example declares, groups expanded, and its chains."""
    [org] = load_paths([str(EXAMPLE)], None).orgs
    desired = desired_org(org)
    pairs = {(u.user.email, a.service.key) for u in desired.users.values() for a in u.authorisations.values()}
    pairs |= {(kvk, s.key) for kvk, c in desired.chains.items() for s in c.services.values()}
    return pairs


@pytest.fixture(scope="module")
def converged(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A sandbox where the example was applied, approved, activated and applied again: in sync."""
    backend = f"sandbox:{tmp_path_factory.mktemp('report') / 'sb.db'}"
    for args in (("apply", str(EXAMPLE), "--auto-approve"), ("sandbox", "approve", "--all"),
                 ("sandbox", "activate", "--all"), ("apply", str(EXAMPLE), "--auto-approve"),
                 ("plan", str(EXAMPLE))):
        code, _, err = invoke(*args, "--backend", backend)
        assert code == 0, (args, err)                                  # the last plan: nothing left to do
    return backend


def records(data: bytes) -> list[dict[str, str]]:
    """The csv of standard output: no byte order mark (that is for a file Excel opens, not for a pipe)."""
    assert data.startswith(b"kvk,organisation,")
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def test_csv_has_its_byte_order_mark_only_in_a_file(converged: str, tmp_path: Path) -> None:
    code, piped, err = invoke("report", "access", str(EXAMPLE), "--backend", converged)
    assert code == 0, err
    assert not piped.startswith(b"\xef\xbb\xbf") and piped.startswith(b"kvk,organisation,")
    out_file = tmp_path / "access.csv"
    code, out, err = invoke("report", "access", str(EXAMPLE), "--backend", converged, "--out", str(out_file))
    assert code == 0 and out == b"", err
    assert out_file.read_bytes() == b"\xef\xbb\xbf" + piped                   # one BOM, then the same bytes


def test_every_declared_authorisation_is_reported_as_declared(converged: str) -> None:
    code, out, err = invoke("report", "access", str(EXAMPLE), "--backend", converged)
    assert code == 0, err
    rows = records(out)
    assert list(rows[0]) == list(CSV_HEADER)
    expected = declared_pairs()
    assert len(expected) == 16
    assert {(r["person"], r["service"]) for r in rows} == expected
    assert len(rows) == len(expected)
    assert {r["config"] for r in rows} == {"declared"}
    assert {r["kvk"] for r in rows} == {KVK}
    assert {r["status"] for r in rows if r["role"] != "intermediary"} == {"actief"}
    chain = [r for r in rows if r["role"] == "intermediary"]
    assert {(r["person"], r["name"], r["end date"]) for r in chain} == {("47474747", "Accountants Vries", "2029-10-14")}
    tim = [r for r in rows if r["person"] == "t.vanleeuwen@ketelaarklip.nl"]
    assert [(r["service"], r["level"], r["minimum level"], r["end date"]) for r in tim] == \
        [("rvo/tenderned", "EH2", "EH2", "2027-03-31")]
    assert [(r["kvk"], r["person"], r["service"]) for r in rows] == sorted(
        ((r["kvk"], r["person"], r["service"]) for r in rows), key=lambda k: (k[0], k[1][0].isdigit(), k[1], k[2]))


def test_markdown_and_html_to_a_file(converged: str, tmp_path: Path) -> None:
    code, out, err = invoke("report", "access", str(EXAMPLE), "--backend", converged, "--format", "markdown")
    assert code == 0, err
    text = out.decode("utf-8")
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| person | name | role |") and lines[1].startswith("| --- |")
    assert len(lines) == 2 + 16 and sum("| declared |" in line for line in lines) == 16
    assert f"## {KVK} Ketelaar Klip Installatietechniek B.V." in text
    page = tmp_path / "access.html"
    code, out, err = invoke("report", "access", str(EXAMPLE), "--backend", converged, "--format", "html",
                            "--out", str(page))
    assert code == 0 and out == b"", err
    assert f"wrote 16 rows for 1 organisation to {page}" in err
    html = page.read_text(encoding="utf-8")
    assert html.count('<table class="access">') == 1 and html.count("<tr>") + html.count("<tr class=") == 17
    for email, key in declared_pairs():
        assert email in html and key in html
    assert "http://" not in html and "https://" not in html


def test_a_grant_made_outside_the_config_is_not_in_config(tmp_path: Path) -> None:
    backend = f"sandbox:{tmp_path / 'sb.db'}"
    base = tmp_path / "org.yaml"
    base.write_text('version: 1\norganisation: {kvk: "12345678", name: Acme}\nusers:\n'
                    "  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}\n")
    wider = tmp_path / "wider" / "org.yaml"
    wider.parent.mkdir()
    wider.write_text(base.read_text().rstrip()[:-1] + ", authorisations: [{service: rvo/tenderned, until: rolling}]}\n")
    code, _, err = invoke("apply", str(wider), "--auto-approve", "--backend", backend)   # "by hand"
    assert code == 0, err
    code, out, err = invoke("report", "access", str(base), "--backend", backend, "--shard", "1/1")
    assert code == 0, err
    got = {(r["person"], r["service"], r["role"], r["config"]) for r in records(out)}
    assert got == {("admin@acme.nl", "rvo/tenderned", "beheerder", "not in config")}
    code, out, err = invoke("report", "access", str(wider), "--backend", backend)
    assert {r["config"] for r in records(out)} == {"declared"}


def test_errors_exit_1_with_a_message_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text('version: 1\norganisation: {kvk: "123", name: Acme}\n')
    code, out, err = invoke("report", "access", str(bad), "--backend", f"sandbox:{tmp_path / 'sb.db'}")
    assert code == 1 and out == b""
    assert "bad.yaml:2:" in err and "Traceback" not in err
    code, out, err = invoke("report", "access", str(EXAMPLE), "--backend", f"sandbox:{tmp_path / 'sb.db'}",
                            "--out", str(tmp_path / "missing" / "dir" / "r.csv"))
    assert code == 1 and "error: cannot write" in err and "does not exist" in err and "Traceback" not in err
    assert "note: " not in err      # refused before the backend was read
    code, _, err = invoke("report", "access", str(EXAMPLE), "--format", "xlsx")
    assert code == 1 and "xlsx" in err
    code, _, err = invoke("report", "access", str(EXAMPLE), "--backend", "ftp://nowhere")
    assert code == 1 and err.startswith("error: ") and "Traceback" not in err


def test_an_organisation_the_backend_does_not_give_is_listed_and_exits_1(converged: str, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import reconciler.backend.read as read

    real = read.read_state

    async def hiding(clients, kvks, catalogue):  # type: ignore[no-untyped-def]
        state = await real(clients, kvks, catalogue)
        state.world.orgs.pop(KVK)
        state.unknown.add(KVK)
        return state

    monkeypatch.setattr(read, "read_state", hiding)
    out_file = tmp_path / "r.md"
    code, _, err = invoke("report", "access", str(EXAMPLE), "--backend", converged, "--format", "markdown",
                          "--out", str(out_file))
    assert code == 1 and f"error: the report is incomplete: the backend does not give access to organisation {KVK}" in err
    text = out_file.read_text()
    assert f"Not read (the backend does not give access to them): {KVK}" in text and "| person |" not in text
