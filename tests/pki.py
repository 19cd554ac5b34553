"""A test PKI (a root, an intermediate standing in for a Vietnamese CA, signers) and PDFs signed with pyHanko."""

import io
from datetime import UTC, datetime, timedelta

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import PdfFileWriter
from pyhanko.sign import signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

NOW = datetime.now(UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name), x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")])


class Party:
    """A key and its certificate, issued by `issuer` (itself when None)."""

    def __init__(self, common_name: str, issuer: "Party | None" = None, ca: bool = False,
                 start: datetime = NOW - timedelta(days=30), end: datetime = NOW + timedelta(days=365)):
        self.common_name = common_name
        self.key = ec.generate_private_key(ec.SECP256R1())
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
        self.cert = builder.sign(self.issuer.key, hashes.SHA256())

    @property
    def asn1(self) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(self.cert.public_bytes(serialization.Encoding.DER))

    def signer(self) -> signers.SimpleSigner:
        key = asn1_keys.PrivateKeyInfo.load(self.key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        chain = [p.asn1 for p in (self.issuer,) if p is not self]
        return signers.SimpleSigner(signing_cert=self.asn1, signing_key=key,
                                    cert_registry=SimpleCertificateStore.from_certs(chain))


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


def sign(pdf: bytes, party: Party, field: str = "Signature1") -> bytes:
    out = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), signers.PdfSignatureMetadata(field_name=field),
                           signer=party.signer())
    return out.getvalue()
