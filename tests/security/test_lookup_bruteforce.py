"""Finding 2 (high): the citizen lookup's lockout was bypassed by concurrency. The failure was recorded
after the database read, so concurrent wrong guesses were all evaluated past the limit, and 10,000
concurrent guesses from 334 addresses found the 4 digits; the counters were per replica, in memory.
Here: the same burst from 334 loopback addresses over three replicas never succeeds, and at most the
code's limit of wrong guesses is ever evaluated (docs/security.md)."""

import asyncio
import itertools
from datetime import timedelta

import httpx

from shared.lookup import lookup_token
from tests.fixtures.sample import dossier_code, event
from tests.integration.conftest import OPERATOR, SECRETS, wait_until
from tests.integration.test_notifications import START

ADDRESSES = [f"127.0.{1 + n // 200}.{1 + n % 200}" for n in range(334)]  # each guess from one of them
LIMIT = 10  # wrong guesses of a code an hour (the default)


def test_ten_thousand_concurrent_guesses_from_many_addresses_over_three_replicas_never_find_the_digits(pipeline):
    replicas = [pipeline.add_processing(DOSSIER_PROCESSING_LOOKUP_PER_CLIENT_PER_MINUTE="1000").start()
                for _ in range(3)]
    code = dossier_code(START, sequence=703)
    pipeline.post([event("dossier.received", code, START + timedelta(hours=1),
                         applicant={"name": "Lê Thị Mai", "phone": "0912345678", "sms_opt_in": False})])
    for replica in replicas:
        wait_until(lambda r=replica: httpx.get(f"{r.url}/v1/dossiers/{code}", headers=OPERATOR).status_code == 200,
                   message="the dossier processed")
    guesses = [f"{n:04d}" for n in range(10_000) if n != 5678] + ["5678"]  # the right one comes last

    answers = asyncio.run(burst(code, guesses, [r.url for r in replicas]))

    assert answers.count(200) == 0, "the 4 digits were found"
    assert answers.count(404) <= LIMIT, f"{answers.count(404)} wrong guesses evaluated, the limit is {LIMIT}"
    assert answers.count(429) == len(guesses) - answers.count(404)
    # The citizen's QR code still opens the dossier: nobody's failures lock it out.
    token = lookup_token((SECRETS / "dossier_lookup_secret").read_text(), code)
    assert httpx.get(f"{replicas[0].url}/v1/lookup/{code}", params={"token": token}).status_code == 200
    assert httpx.get(f"{replicas[1].url}/v1/lookup/{code}", params={"phone4": "5678"}).status_code == 429


async def burst(code: str, guesses: list[str], urls: list[str], in_flight: int = 150) -> list[int]:
    clients = [httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=address), timeout=60)
               for address in ADDRESSES]
    gate = asyncio.Semaphore(in_flight)
    sources = itertools.cycle(zip(itertools.cycle(urls), clients))

    async def guess(digits: str, url: str, client: httpx.AsyncClient) -> int:
        async with gate:
            return (await client.get(f"{url}/v1/lookup/{code}", params={"phone4": digits})).status_code

    try:
        return await asyncio.gather(*(guess(digits, *next(sources)) for digits in guesses))
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
