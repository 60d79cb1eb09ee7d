"""The XML signature of a service catalog, checked against the aggregator's certificate: a catalogue signed in
the test verifies; edited after signing, signed by another key, unsigned, signing only part of itself, or
carrying a DTD, it is refused with the reason in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.domain.etoegang import CatalogueImportError, parse_service_catalog
from reconciler.domain.etoegang_signature import (CertificateUnreadable, SignatureRefused, load_certificate,
                                                  verify_catalogue_signature)
from reconciler.domain.levels import Level

from .signing import aggregator, make_signer, sign, stranger
from .test_etoegang import EXTERNAL_ENTITY, catalog, definition, provider, uuid

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "etoegang-catalog.xml"


def signed_catalogue() -> bytes:
    return sign(catalog(provider("Gemeente Baarn", definition(uuid(1), "Mestverantwoording", "loa4"),
                                 definition(uuid(2), "Loket", "loa2"))))


def test_a_catalogue_signed_with_the_certificates_key_verifies() -> None:
    xml = signed_catalogue()
    assert b"<ds:Signature" in xml and b'URI=""' in xml
    verify_catalogue_signature(xml, aggregator().certificate)        # no exception
    levels = [s.level for s in parse_service_catalog(xml).services]  # the signature does not disturb the import
    assert levels == [Level.EH4, Level.EH2]


def test_the_sample_signed_by_its_root_id_verifies() -> None:
    xml = sign(SAMPLE.read_bytes())
    assert b'URI="#_9d1c6f0e-5a47-4c2b-9a8e-3f1d2c4b5a60"' in xml
    verify_catalogue_signature(xml, aggregator().certificate)


@pytest.mark.parametrize("by_id", [False, True], ids=["uri-empty", "uri-root-id"])
def test_a_level_edited_after_signing_is_refused(by_id: bool) -> None:
    xml = sign(SAMPLE.read_bytes()) if by_id else signed_catalogue()
    edited = xml.replace(b"assurance-class:loa4", b"assurance-class:loa2")
    assert edited != xml
    with pytest.raises(SignatureRefused) as info:
        verify_catalogue_signature(edited, aggregator().certificate)
    assert str(info.value).startswith("signature invalid: the catalogue was changed after it was signed")


def test_a_catalogue_signed_with_another_key_is_refused() -> None:
    with pytest.raises(SignatureRefused, match="^signature invalid: it was not made with this certificate's key"):
        verify_catalogue_signature(sign(catalog(provider("UWV", definition(uuid(1), "Portaal"))), stranger()),
                                   aggregator().certificate)


def test_an_unsigned_catalogue_is_refused_when_a_certificate_is_given() -> None:
    with pytest.raises(SignatureRefused, match="^no signature: the catalogue has no ds:Signature"):
        verify_catalogue_signature(SAMPLE.read_bytes(), aggregator().certificate)


def test_a_signature_over_part_of_the_catalogue_is_refused() -> None:
    """Signature wrapping: a valid signature over one ServiceProvider says nothing about the others."""
    xml = catalog(provider("UWV", definition(uuid(1), "Portaal"))).replace(
        b"<esc:ServiceProvider>", b'<esc:ServiceProvider ID="sp1">', 1)
    signed = sign(xml, reference_uri="#sp1")
    with pytest.raises(SignatureRefused, match="signs '#sp1', not the whole catalogue"):
        verify_catalogue_signature(signed, aggregator().certificate)


def test_a_second_element_with_the_signed_id_is_refused() -> None:
    signed = sign(SAMPLE.read_bytes())
    wrapped = signed.replace(b"<esc:ServiceProvider esc:IsPublic", b'<esc:ServiceProvider '
                             b'ID="_9d1c6f0e-5a47-4c2b-9a8e-3f1d2c4b5a60" esc:IsPublic', 1)
    with pytest.raises(SignatureRefused, match="used by 2 elements"):
        verify_catalogue_signature(wrapped, aggregator().certificate)


def test_an_expired_certificate_is_refused() -> None:
    old = make_signer(days=10, born_days_ago=40)
    xml = sign(catalog(provider("UWV", definition(uuid(1), "Portaal"))), old)
    with pytest.raises(SignatureRefused, match="the certificate is valid from .* not now"):
        verify_catalogue_signature(xml, old.certificate)
    young = make_signer(days=10, born_days_ago=5)            # the same, valid today, passes
    verify_catalogue_signature(sign(catalog(provider("UWV", definition(uuid(1), "Portaal"))), young),
                               young.certificate)


def test_a_dtd_is_refused_before_the_signature_parser_sees_it() -> None:
    with pytest.raises(CatalogueImportError) as info:
        verify_catalogue_signature(EXTERNAL_ENTITY, aggregator().certificate)
    assert "DTD" in info.value.message and info.value.line == 2


def test_certificates_load_from_pem_and_der_and_others_are_unreadable() -> None:
    from cryptography.hazmat.primitives import serialization

    cert = aggregator().certificate
    assert load_certificate(aggregator().cert_pem) == cert
    assert load_certificate(cert.public_bytes(serialization.Encoding.DER)) == cert
    with pytest.raises(CertificateUnreadable, match="^certificate unreadable: the PEM holds no CERTIFICATE"):
        load_certificate(aggregator().key_pem)
    with pytest.raises(CertificateUnreadable, match="^certificate unreadable: not a PEM"):
        load_certificate(b"hello")
    with pytest.raises(CertificateUnreadable, match="^certificate unreadable"):
        load_certificate(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
