"""A test PKI (a root, an intermediate standing in for a Vietnamese CA, signers, a timestamping
authority, CRLs) and PDFs signed with pyHanko: for the tests, the benchmarks and the local demo."""

import io
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import crl as asn1_crl
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import PdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers, timestamps
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

NOW = datetime.now(UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name), x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")])


class Party:
    """A key and its certificate, issued by `issuer` (itself when None); a timestamping authority when `tsa`."""

    def __init__(self, common_name: str, issuer: "Party | None" = None, ca: bool = False, tsa: bool = False,
                 start: datetime = NOW - timedelta(days=30), end: datetime = NOW + timedelta(days=365)):
        self.common_name = common_name
        # pyHanko's test timestamper signs with RSA only.
        self.key = rsa.generate_private_key(65537, 2048) if tsa else ec.generate_private_key(ec.SECP256R1())
        self.issuer = issuer or self
        builder = (
            x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(self.issuer.common_name))
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=not ca, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                                         encipher_only=False, decipher_only=False), critical=True)
        )
        if self.issuer is not self:  # where its CA publishes revocations, as real CA certificates say
            builder = builder.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                [x509.UniformResourceIdentifier(f"http://crl.test/{self.issuer.cert.serial_number:x}.crl")],
                None, None, None)]), critical=False)
        if tsa:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        self.cert = builder.sign(self.issuer.key, hashes.SHA256())

    @property
    def asn1(self) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(self.cert.public_bytes(serialization.Encoding.DER))

    @property
    def _asn1_key(self) -> asn1_keys.PrivateKeyInfo:
        return asn1_keys.PrivateKeyInfo.load(self.key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    def _chain(self) -> list[asn1_x509.Certificate]:
        return [p.asn1 for p in (self.issuer,) if p is not self]

    def signer(self) -> signers.SimpleSigner:
        return signers.SimpleSigner(signing_cert=self.asn1, signing_key=self._asn1_key,
                                    cert_registry=SimpleCertificateStore.from_certs(self._chain()))

    def timestamper(self, at: datetime) -> timestamps.TimeStamper:
        """This authority's timestamps, all saying `at`."""
        return timestamps.DummyTimeStamper(tsa_cert=self.asn1, tsa_key=self._asn1_key,
                                           certs_to_embed=SimpleCertificateStore.from_certs(self._chain()), fixed_dt=at)

    def crl(self, revoked: dict["Party", datetime] | None = None) -> asn1_crl.CertificateList:
        """This CA's revocation list, issued an hour ago: `revoked` maps certificates to their revocation time."""
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
                   .last_update(NOW - timedelta(hours=1)).next_update(NOW + timedelta(days=7)))
        for party, when in (revoked or {}).items():
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(party.cert.serial_number).revocation_date(when).build())
        return asn1_crl.CertificateList.load(builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))


def blank_pdf(text: str = "Quyết định", password: str | None = None) -> bytes:
    writer = PdfFileWriter()
    page = generic.DictionaryObject({
        generic.NameObject("/Type"): generic.NameObject("/Page"),
        generic.NameObject("/MediaBox"): generic.ArrayObject([generic.NumberObject(n) for n in (0, 0, 595, 842)]),
    })
    writer.insert_page(page)
    writer.document_meta.title = text
    if password:
        writer.encrypt(password, password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def sign(pdf: bytes, party: Party, field: str = "Signature1", timestamper: timestamps.TimeStamper | None = None,
         crls: list[asn1_crl.CertificateList] | None = None) -> bytes:
    """`pdf` signed by `party`; with `crls`, those revocation lists embedded in the signature (Adobe's archival)."""
    meta = signers.PdfSignatureMetadata(field_name=field)
    if crls:
        root = party
        while root.issuer is not root:
            root = root.issuer
        meta = signers.PdfSignatureMetadata(field_name=field, embed_validation_info=True, validation_context=ValidationContext(
            trust_roots=[root.asn1], other_certs=party._chain(), crls=crls, allow_fetching=False))
    return _signed(pdf, party.signer(), meta, timestamper)


def _signed(pdf: bytes, signer: signers.Signer, meta: signers.PdfSignatureMetadata,
            timestamper: timestamps.TimeStamper | None = None) -> bytes:
    out = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), meta, signer=signer, timestamper=timestamper)
    return out.getvalue()


def with_stored_crls(signed: bytes, crls: list[asn1_crl.CertificateList]) -> bytes:
    """`signed` with `crls` added to its document security store (PAdES-LT), as an incremental update."""
    out = io.BytesIO(signed)
    last = PdfFileReader(io.BytesIO(signed)).embedded_signatures[-1]
    DocumentSecurityStore.add_dss(out, last.pkcs7_content, crls=crls)
    return out.getvalue()


def local_demo_pki(folder: Path, shipped: Path) -> None:
    """The local stack's trust roots under `folder`/trust-roots: the deployment's PEM files (`shipped`)
    and a demo root made once, trusted by the local stack only, with a CA standing in for VNPT-CA
    and an official's signing key (`folder`/official.p12, no password) for `make demo`."""
    roots = folder / "trust-roots"
    roots.mkdir(parents=True, exist_ok=True)
    for pem in shipped.glob("*.pem"):
        shutil.copyfile(pem, roots / pem.name)
    if (folder / "official.p12").exists():
        return
    root = Party("Local demo root (trusted by the local stack only)", ca=True, end=NOW + timedelta(days=3650))
    ca = Party("VNPT-CA (local demo)", issuer=root, ca=True, end=NOW + timedelta(days=3650))
    official = Party("Nguyễn Văn An - Chủ tịch UBND xã (local demo)", issuer=ca, end=NOW + timedelta(days=3650))
    (roots / "local-demo-root.pem").write_bytes(root.cert.public_bytes(serialization.Encoding.PEM))
    (folder / "official.p12").write_bytes(pkcs12.serialize_key_and_certificates(
        b"official", official.key, official.cert, [ca.cert], serialization.NoEncryption()))


def sign_with_pkcs12(pdf: bytes, p12: Path, field: str = "Signature1") -> bytes:
    return _signed(pdf, signers.SimpleSigner.load_pkcs12(str(p12), passphrase=None),
                   signers.PdfSignatureMetadata(field_name=field))


if __name__ == "__main__":  # deploy/local/services.sh: python -m bench.pki FOLDER SHIPPED_ROOTS
    local_demo_pki(Path(sys.argv[1]), Path(sys.argv[2]))
