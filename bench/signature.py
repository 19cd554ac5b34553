"""make bench-signature: verifications per second of a typical 200 KB signed result, our verify()
beside pyHanko's own validation called directly on the same document, in the same run."""

import io
import os
import statistics
import time

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PdfFileWriter
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from bench.harness import knob
from bench.report import table, write_section
from services.signature.verify import verify
from tests.fixtures.pki import Party, sign

ROUNDS = knob("BENCH_SIGNATURE_ROUNDS", 200, 3)


def result_pdf(size: int = 200 * 1024) -> bytes:
    """A one-page PDF of about `size` bytes (an uncompressed content stream, as scans often are)."""
    writer = PdfFileWriter()
    content = generic.StreamObject(stream_data=b"BT /F1 12 Tf 72 720 Td (Quyet dinh) Tj ET\n" + os.urandom(size))
    page = generic.DictionaryObject({
        generic.NameObject("/Type"): generic.NameObject("/Page"),
        generic.NameObject("/MediaBox"): generic.ArrayObject([generic.NumberObject(n) for n in (0, 0, 595, 842)]),
        generic.NameObject("/Contents"): writer.add_object(content),
    })
    writer.insert_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def rate(work, rounds: int) -> float:
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return 1 / statistics.median(seconds)


def main() -> None:
    root = Party("Root CA test", ca=True)
    ca = Party("VNPT-CA test", issuer=root, ca=True)
    signed = sign(result_pdf(), Party("Nguyen Van A", issuer=ca))
    roots = [root.asn1]
    assert verify(signed, roots).verdict == "valid"

    def direct() -> None:
        reader = PdfFileReader(io.BytesIO(signed))
        status = validate_pdf_signature(reader.embedded_signatures[0], ValidationContext(trust_roots=roots,
                                                                                       allow_fetching=False))
        assert status.bottom_line

    ours, theirs = rate(lambda: verify(signed, roots), ROUNDS), rate(direct, ROUNDS)
    print(f"{len(signed) / 1024:.0f} KB signed PDF: verify() {ours:.0f}/s, pyHanko directly {theirs:.0f}/s")
    write_section("signature", "Signature: verifying a signed result", "make bench-signature", table(
        ["path", "document", "verifications/s (median of rounds)", "ratio"],
        [["pyHanko validate_pdf_signature, called directly", f"{len(signed) / 1024:.0f} KB, 1 signature",
          f"{theirs:.0f}", "1"],
         ["services.signature.verify (reads, checks coverage and trust, builds the verdict)",
          f"{len(signed) / 1024:.0f} KB, 1 signature", f"{ours:.0f}", f"{ours / theirs:.0%}"]],
    ) + f"\n\n{ROUNDS} rounds each, in one process, offline (no revocation fetching).")


if __name__ == "__main__":
    main()
