"""`reconciler catalogue import` on real-world catalogue situations (issue 13 section 5): keys that stay on their
UUIDs across re-imports (--previous, by default the --out file), an empty catalogue refused, and the XML
signature checked with --cert (or said to be unchecked). Every refusal: exit 1, one `error:` line naming the
file, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.cli.test_catalogue import SAMPLE, run
from tests.domain.signing import aggregator, sign, stranger
from tests.domain.test_etoegang import EXTERNAL_ENTITY, catalog, definition, provider, uuid

NOT_VERIFIED = "warning: the catalogue's signature was not verified; pass --cert FILE"


def keys_in(path: Path) -> dict[str, tuple[str, str]]:
    """key -> (uuid, level) of a written catalogue file."""
    return {s["key"]: (s["uuid"], s["level"]) for s in yaml.safe_load(path.read_text(encoding="utf-8"))["services"]}


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def baarn(*order: int) -> bytes:
    """Gemeente Baarn's two services named Omgevingsloket (loa4 and loa2) and one other, in the given order."""
    definitions = {1: definition(uuid(1), "Omgevingsloket", "loa4"), 2: definition(uuid(2), "Omgevingsloket", "loa2"),
                   3: definition(uuid(3), "Parkeren", "loa2plus")}
    return catalog(provider("Gemeente Baarn", *(definitions[n] for n in order)))


# --- stable keys ------------------------------------------------------------------------------------------


def test_the_same_catalogue_in_two_orders_gives_the_same_keys(tmp_path: Path) -> None:
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    assert run("catalogue", "import", write(tmp_path / "a.xml", baarn(1, 2, 3)), "--out", str(first)).exit_code == 0
    assert run("catalogue", "import", write(tmp_path / "b.xml", baarn(3, 2, 1)), "--out", str(second)).exit_code == 0
    assert keys_in(first) == keys_in(second)
    assert keys_in(first)["gemeente-baarn/omgevingsloket-00000001"] == (uuid(1), "EH4")
    assert keys_in(first)["gemeente-baarn/omgevingsloket-00000002"] == (uuid(2), "EH2")


def test_reimporting_over_the_out_file_keeps_its_keys(tmp_path: Path) -> None:
    out = tmp_path / "catalogue.yaml"
    assert run("catalogue", "import", write(tmp_path / "a.xml", baarn(2, 3)), "--out", str(out)).exit_code == 0
    assert keys_in(out)["gemeente-baarn/omgevingsloket"] == (uuid(2), "EH2")
    # a second Omgevingsloket appears, listed first: the existing key stays on its UUID, the newcomer is suffixed
    result = run("catalogue", "import", write(tmp_path / "b.xml", baarn(1, 2, 3)), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert keys_in(out) == {"gemeente-baarn/omgevingsloket": (uuid(2), "EH2"),
                            "gemeente-baarn/omgevingsloket-00000001": (uuid(1), "EH4"),
                            "gemeente-baarn/parkeren": (uuid(3), "EH2+")}


def test_an_explicit_previous_file_keeps_its_keys(tmp_path: Path) -> None:
    previous = tmp_path / "old.yaml"
    assert run("catalogue", "import", write(tmp_path / "a.xml", baarn(2)), "--out", str(previous)).exit_code == 0
    result = run("catalogue", "import", write(tmp_path / "b.xml", baarn(1, 2)), "--previous", str(previous))
    assert result.exit_code == 0, result.stderr
    keys = {s["key"]: s["uuid"] for s in yaml.safe_load(result.stdout)["services"]}
    assert keys == {"gemeente-baarn/omgevingsloket": uuid(2), "gemeente-baarn/omgevingsloket-00000001": uuid(1)}


def test_a_key_that_would_move_to_another_uuid_is_refused_and_the_file_kept(tmp_path: Path) -> None:
    out = tmp_path / "catalogue.yaml"
    assert run("catalogue", "import", write(tmp_path / "a.xml", baarn(1, 3)), "--out", str(out)).exit_code == 0
    before = out.read_bytes()
    # Omgevingsloket now has another UUID (and another level): the key must not silently follow it
    moved = catalog(provider("Gemeente Baarn", definition(uuid(9), "Omgevingsloket", "loa2"),
                             definition(uuid(8), "Parkeren", "loa2plus")))
    xml = write(tmp_path / "b.xml", moved)
    result = run("catalogue", "import", xml, "--out", str(out))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2, lines                               # one line per moved key
    assert all(line.startswith(f"error: {out}: key 'gemeente-baarn/") for line in lines)
    omgeving = next(line for line in lines if "omgevingsloket" in line)
    assert uuid(1) in omgeving and uuid(9) in omgeving and xml in omgeving
    assert out.read_bytes() == before
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_a_broken_previous_file_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "catalogue.yaml"
    out.write_text("services:\n  - key: 1\n", encoding="utf-8")
    before = out.read_bytes()
    result = run("catalogue", "import", str(SAMPLE), "--out", str(out))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {out}:2:")
    assert "previous catalogue" in result.stderr and "--previous" in result.stderr
    assert out.read_bytes() == before


# --- an empty catalogue -----------------------------------------------------------------------------------


def test_a_catalogue_without_services_is_refused_and_the_out_file_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "catalogue.yaml"
    assert run("catalogue", "import", str(SAMPLE), "--out", str(out)).exit_code == 0
    before = out.read_bytes()
    xml = write(tmp_path / "empty.xml", catalog(provider("Gemeente Baarn")))
    result = run("catalogue", "import", xml, "--out", str(out))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {xml}:2: the file holds no ServiceDefinition: an empty catalogue is not imported (is it the "
        "right file, and complete?)"]
    assert out.read_bytes() == before
    assert result.stdout == ""


# --- the signature ----------------------------------------------------------------------------------------


@pytest.fixture()
def cert(tmp_path: Path) -> str:
    return write(tmp_path / "aggregator.pem", aggregator().cert_pem)


def test_without_cert_it_says_once_that_the_signature_was_not_verified(tmp_path: Path) -> None:
    out = tmp_path / "catalogue.yaml"
    result = run("catalogue", "import", write(tmp_path / "s.xml", sign(SAMPLE.read_bytes())), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count(NOT_VERIFIED) == 1 and result.stderr.count("\n") == 1
    assert "its XML signature was NOT verified" in out.read_text(encoding="utf-8")


def test_a_signed_catalogue_verifies_with_its_certificate(tmp_path: Path, cert: str) -> None:
    out = tmp_path / "catalogue.yaml"
    result = run("catalogue", "import", write(tmp_path / "s.xml", sign(SAMPLE.read_bytes())), "--out", str(out),
                 "--cert", cert)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.strip() == f"6 services from 3 providers, written to {out}"
    assert keys_in(out)["rijksdienst-voor-ondernemend-nederland/mestverantwoording"][1] == "EH4"
    assert "its XML signature was verified (--cert)" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(("case", "reason"), [
    ("edited", "signature invalid: the catalogue was changed after it was signed"),
    ("other-key", "signature invalid: it was not made with this certificate's key"),
    ("unsigned", "no signature: the catalogue has no ds:Signature"),
])
def test_a_bad_or_missing_signature_is_refused_and_nothing_written(tmp_path: Path, cert: str, case: str,
                                                                    reason: str) -> None:
    data = {"edited": sign(SAMPLE.read_bytes()).replace(b"assurance-class:loa4", b"assurance-class:loa2"),
            "other-key": sign(SAMPLE.read_bytes(), stranger()),
            "unsigned": SAMPLE.read_bytes()}[case]
    xml = write(tmp_path / "in.xml", data)
    out = tmp_path / "catalogue.yaml"
    out.write_text("services: []\n", encoding="utf-8")
    result = run("catalogue", "import", xml, "--out", str(out), "--cert", cert)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {xml}: {reason}")
    assert out.read_text(encoding="utf-8") == "services: []\n"
    assert result.stdout == "" and "Traceback" not in result.stderr


@pytest.mark.parametrize(("content", "reason"), [
    (b"not a certificate", "certificate unreadable: not a PEM"),
    (None, "certificate unreadable: the PEM holds no CERTIFICATE block"),
])
def test_an_unreadable_certificate_is_refused_naming_it(tmp_path: Path, content: bytes | None, reason: str) -> None:
    cert = write(tmp_path / "cert.pem", content if content is not None else aggregator().key_pem)
    result = run("catalogue", "import", write(tmp_path / "s.xml", sign(SAMPLE.read_bytes())), "--cert", cert)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {cert}: {reason}"), lines
    assert result.stdout == ""


def test_a_missing_certificate_file_is_refused(tmp_path: Path) -> None:
    result = run("catalogue", "import", str(SAMPLE), "--cert", str(tmp_path / "nope.pem"))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {tmp_path / 'nope.pem'}: certificate unreadable: cannot read the file")


def test_a_dtd_is_still_refused_when_the_signature_is_checked(tmp_path: Path, cert: str) -> None:
    xml = write(tmp_path / "dtd.xml", EXTERNAL_ENTITY)
    result = run("catalogue", "import", xml, "--cert", cert)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {xml}:2: the XML declares a DTD")


def test_help_describes_previous_and_cert() -> None:
    result = run("catalogue", "import", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "--previous FILE" in text and "Default: the --out file, when it exists" in text
    assert "--cert FILE" in text and "signing certificate (PEM)" in text
