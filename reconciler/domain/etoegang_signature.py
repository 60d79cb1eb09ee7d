"""Checking the XML signature of an eToegang service catalog against the aggregator's signing certificate.

A catalogue says which UUID a key means and which level a service needs (R8): an edited copy (loa4 -> loa2)
would let configs grant too low a level. With the certificate given, the catalogue is imported only when its
enveloped ds:Signature, made with that certificate's key, covers the whole document. signxml does the
cryptography (a well-kept library; this module only decides what must be signed and says why it refuses).

Safety of the parse: the bytes first pass the same defusedxml gate as the import (DTDs, entities and external
references refused), and lxml then reads them with entity resolution, DTD loading and the network off.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from lxml import etree
from signxml import SignatureConfiguration, XMLVerifier
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature, SignXMLException

from reconciler.domain.etoegang import CertificateUnreadable, SignatureRefused, check_xml_is_safe

__all__ = ["CertificateUnreadable", "SignatureRefused", "load_certificate", "verify_catalogue_signature"]

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
_ID_ATTRIBUTES = ("ID", "Id", "id")


def load_certificate(data: bytes) -> x509.Certificate:
    """The signing certificate from PEM (or DER) bytes; `CertificateUnreadable` when it is neither."""
    if b"-----BEGIN" in data:
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise CertificateUnreadable("certificate unreadable: the PEM holds no CERTIFICATE block (a key or a "
                                        "request?); give the aggregator's signing certificate")
        try:
            return x509.load_pem_x509_certificate(data)
        except ValueError as exc:
            raise CertificateUnreadable(f"certificate unreadable: {_first_line(exc)}") from None
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise CertificateUnreadable("certificate unreadable: not a PEM (-----BEGIN CERTIFICATE-----) or DER "
                                    "X.509 certificate") from None


def verify_catalogue_signature(data: bytes, certificate: x509.Certificate) -> None:
    """Return when `data` carries one enveloped signature, over the whole catalogue, valid for `certificate`;
    raise `SignatureRefused` (or CatalogueImportError for unsafe XML) otherwise."""
    check_xml_is_safe(data)                                   # DTDs and entities refused before lxml sees them
    moment = dt.datetime.now(dt.timezone.utc)           # checked here too: signxml < 5 does not, for --cert
    if not certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
        raise SignatureRefused(
            f"signature not accepted: the certificate is valid from {certificate.not_valid_before_utc:%Y-%m-%d} "
            f"to {certificate.not_valid_after_utc:%Y-%m-%d}, not now; ask the aggregator for its current one")
    parser = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False,
                             remove_comments=False)
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:                       # the defusedxml gate should have said it already
        raise SignatureRefused(f"signature not checked: the XML cannot be read: {_first_line(exc)}") from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise SignatureRefused("signature not checked: the XML declares a DTD, which is refused")

    signatures = root.findall(f".//{{{DS_NS}}}Signature")
    if not signatures:
        raise SignatureRefused("no signature: the catalogue has no ds:Signature, so --cert cannot vouch for it; "
                               "use the signed catalogue as the aggregator publishes it")
    own = [s for s in signatures if s.getparent() is root]
    if len(signatures) > 1 or not own:
        raise SignatureRefused("signature invalid: expected one ds:Signature directly under the root element, "
                               f"found {len(signatures)} ({len(own)} under the root)")
    _check_covers_root(root, own[0])

    config = SignatureConfiguration(location="./", expect_references=1)
    try:
        XMLVerifier().verify(data, x509_cert=certificate, parser=parser, expect_config=config)
    except InvalidDigest:
        raise SignatureRefused("signature invalid: the catalogue was changed after it was signed: its digest "
                               "does not match") from None
    except InvalidCertificate as exc:
        raise SignatureRefused(f"signature not accepted: {_first_line(exc)}") from None
    except InvalidSignature:
        raise SignatureRefused("signature invalid: it was not made with this certificate's key, or the "
                               "signature itself was changed") from None
    except (InvalidInput, SignXMLException, ValueError, etree.LxmlError) as exc:
        raise SignatureRefused(f"signature invalid: {_first_line(exc)}") from None


def _check_covers_root(root: etree._Element, signature: etree._Element) -> None:
    """See what is signed: the one Reference must be the whole document ("") or the root element by its ID,
    an ID no other element has, so no unsigned content can sit beside signed content (signature wrapping)."""
    references = signature.findall(f"{{{DS_NS}}}SignedInfo/{{{DS_NS}}}Reference")
    if len(references) != 1:
        raise SignatureRefused(f"signature invalid: expected one ds:Reference (the whole catalogue), found "
                               f"{len(references)}")
    uri = references[0].get("URI")
    if uri == "":
        return
    root_ids = {root.get(name) for name in _ID_ATTRIBUTES} - {None}
    if uri is None or not uri.startswith("#") or uri[1:] not in root_ids:
        raise SignatureRefused(f"signature invalid: it signs {uri!r}, not the whole catalogue (the root "
                               f"element's ID is {', '.join(sorted(str(i) for i in root_ids)) or 'missing'})")
    holders = [element for element in root.iter() if isinstance(element.tag, str)
               and any(element.get(name) == uri[1:] for name in _ID_ATTRIBUTES)]
    if len(holders) != 1:
        raise SignatureRefused(f"signature invalid: the ID {uri[1:]!r} it signs is used by {len(holders)} elements")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
