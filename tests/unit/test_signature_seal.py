"""The agency's seal (services/signature/seal.py) asked for by several requests at once."""

from concurrent.futures import ThreadPoolExecutor

from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
from pyhanko.sign import signers

from services.signature.seal import Sealer
from services.signature.verify import verify
from tests.fixtures.pki import Party, blank_pdf
from tests.unit.test_signature_verify import threads_switching_often

ROOT = Party("Root CA test", ca=True)
CA = Party("VNPT-CA test", issuer=ROOT, ca=True)
AGENCY = Party("UBND xa Ba Thuoc", issuer=CA)


def test_results_sealed_side_by_side_are_each_sealed_and_valid(tmp_path):
    """The service seals in threads, one per request. pyHanko's signer reads its certificate through asn1crypto, which
    parses a field on first use, not safely from two threads: 9 of 240 seals side by side failed (KeyError, ValueError:
    a 500 to the result system), found beside the verification's same fault. A PKCS#11 session, the HSM's, takes one
    signing operation at a time too: one seal at a time."""
    p12 = tmp_path / "seal.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(b"seal", AGENCY.key, AGENCY.cert, [CA.cert],
                                                          BestAvailableEncryption(b"secret")))
    pdf = blank_pdf()
    with threads_switching_often():
        for _ in range(15):
            sealer = Sealer(signers.SimpleSigner.load_pkcs12(str(p12), passphrase=b"secret"))
            with ThreadPoolExecutor(8) as pool:
                sealed = list(pool.map(lambda _: sealer.seal(pdf), range(8)))
            assert {verify(s, [ROOT.asn1]).verdict for s in sealed} == {"valid"}
