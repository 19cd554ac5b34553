"""The agency's seal (services/signature/seal.py) asked for by several requests at once."""

import asyncio
import threading
import time

from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
from pyhanko.sign import signers

from services.signature.seal import Sealer
from services.signature.verify import verify
from tests.fixtures.pki import Party, blank_pdf

ROOT = Party("Root CA test", ca=True)
CA = Party("VNPT-CA test", issuer=ROOT, ca=True)
AGENCY = Party("UBND xa Ba Thuoc", issuer=CA)


def test_requests_sealing_side_by_side_seal_one_at_a_time_and_each_result_is_valid(tmp_path):
    """The service seals in threads, one per request. pyHanko's signer reads its certificate through asn1crypto, which
    parses a field on first use, not safely from two threads: seals side by side failed now and then (9 of 240 from 8
    threads: KeyError, a 422 to the result system), found beside the verification's same fault. A PKCS#11 session, the
    HSM's, takes one signing operation at a time too. So requests seal in turn, and one waiting holds no thread."""
    p12 = tmp_path / "seal.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(b"seal", AGENCY.key, AGENCY.cert, [CA.cert],
                                                          BestAvailableEncryption(b"secret")))
    sealer = Sealer(signers.SimpleSigner.load_pkcs12(str(p12), passphrase=b"secret"))
    sealing, most = [0], [0]
    lock, seal = threading.Lock(), sealer.seal

    def watched(pdf: bytes) -> bytes:
        with lock:
            sealing[0] += 1
            most[0] = max(most[0], sealing[0])
        time.sleep(0.02)  # long enough for a second thread to come in
        try:
            return seal(pdf)
        finally:
            with lock:
                sealing[0] -= 1

    sealer.seal = watched  # type: ignore[method-assign]

    async def side_by_side() -> list[bytes]:
        return await asyncio.gather(*(sealer.seal_in_turn(blank_pdf()) for _ in range(6)))

    sealed = asyncio.run(side_by_side())
    assert most[0] == 1, f"{most[0]} seals at once"
    assert {verify(s, [ROOT.asn1]).verdict for s in sealed} == {"valid"}
