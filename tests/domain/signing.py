"""Signing service catalogues in the tests themselves: a throw-away key and self-signed certificate made with
`cryptography`, an enveloped XML signature made with signxml's XMLSigner, as an aggregator would sign."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import XMLSigner, methods


@dataclass(frozen=True)
class Signer:
    """A key and its self-signed certificate."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def make_signer(name: str = "Test aggregator", *, days: int = 30, born_days_ago: int = 1) -> Signer:
    """A fresh 2048-bit RSA key with a certificate valid from `born_days_ago` days ago for `days` days."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(days=born_days_ago))
                   .not_valid_after(now - dt.timedelta(days=born_days_ago) + dt.timedelta(days=days))
                   .sign(key, hashes.SHA256()))
    return Signer(key, certificate)


@cache
def aggregator() -> Signer:
    """One signer for the session: key generation is the slow part."""
    return make_signer()


@cache
def stranger() -> Signer:
    """Another key and certificate: what a signature made by someone else looks like."""
    return make_signer("Someone else")


def sign(xml: bytes, signer: Signer | None = None, reference_uri: str | None = None) -> bytes:
    """`xml` with an enveloped ds:Signature as the root's last child (Reference "#ID" when the root has an ID,
    else ""), serialised with its XML declaration as a published catalogue is."""
    signer = signer or aggregator()
    root = etree.fromstring(xml)
    options = {"reference_uri": reference_uri} if reference_uri else {}
    signed = XMLSigner(method=methods.enveloped).sign(root, key=signer.key, cert=[signer.certificate], **options)
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
