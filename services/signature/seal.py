"""The agency's PAdES seal on a result, with its key in a PKCS#12 file or on a PKCS#11 token
(an HSM; SoftHSM2 in the tests). Optional: without a configured key the service seals nothing."""

import asyncio
import io
from pathlib import Path

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign import pkcs11 as p11

from services.signature.settings import SignatureSettings


def _certificates(path: Path | None) -> list[asn1_x509.Certificate]:
    if path is None:
        return []
    return [asn1_x509.Certificate.load(der) for _, _, der in pem.unarmor(path.read_bytes(), multiple=True)]


class Sealer:
    """One seal at a time (`seal_in_turn`): pyHanko's signer reads its certificate through asn1crypto, which parses a
    field on first use, not safely from two threads (seals side by side failed now and then), and a PKCS#11 session
    takes one signing operation at a time."""

    def __init__(self, signer: signers.Signer, session=None):
        self._signer = signer
        self._session = session
        self._turn = asyncio.Lock()

    @classmethod
    def from_settings(cls, s: SignatureSettings) -> "Sealer | None":
        password = s.signature_seal_password.get_secret_value() if s.signature_seal_password else None
        if s.signature_seal_pkcs12:
            passphrase = password.encode() if password else None
            return cls(signers.SimpleSigner.load_pkcs12(str(s.signature_seal_pkcs12), passphrase=passphrase))
        if s.signature_seal_pkcs11_lib:
            session = p11.open_pkcs11_session(str(s.signature_seal_pkcs11_lib), user_pin=password,
                                              token_criteria=p11.TokenCriteria(label=s.signature_seal_token_label))
            [cert, *chain] = _certificates(s.signature_seal_cert)
            # Tokens such as SoftHSM2 offer raw ECDSA only: the digest is then computed here.
            raw = cert.public_key.algorithm == "ec"
            return cls(p11.PKCS11Signer(session, key_label=s.signature_seal_key_label, signing_cert=cert,
                                        ca_chain=chain, use_raw_mechanism=raw), session)
        return None

    async def seal_in_turn(self, pdf: bytes) -> bytes:
        """`seal` in a thread, after those asked before: a request waiting its turn holds no thread (the verification's
        share them)."""
        async with self._turn:
            return await asyncio.to_thread(self.seal, pdf)

    def seal(self, pdf: bytes, field: str = "AgencySeal") -> bytes:
        """The document sealed; one caller at a time (`seal_in_turn`)."""
        meta = signers.PdfSignatureMetadata(field_name=field, subfilter=fields.SigSeedSubFilter.PADES,
                                            reason="Đóng dấu kết quả giải quyết thủ tục hành chính")
        return signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), meta, signer=self._signer).getvalue()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
