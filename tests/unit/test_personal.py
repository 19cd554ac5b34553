"""shared/personal.py: the sealed applicant, the dossiers' keys, the citizens' blind index and the
retention sweep, on an in-memory database (tests/security/test_retention.py runs them on the real stack)."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from shared.events import Applicant
from shared.personal import (DossierKeys, RecentKeys, Retention, citizen_id, new_key, opened_applicant, seal,
                             sealed_applicant, unseal)
from tests.fixtures.memory import MemoryDatabase

CODE = "000.00.38.H56-250701-0001"
OTHER = "000.00.38.H56-250701-0002"
APPLICANT = {"name": "Nguyễn Văn An", "phone": "0912345678", "sms_opt_in": True, "address": "Bá Thước"}


def test_a_sealed_applicant_opens_with_its_key_and_code_only():
    key = new_key()
    wire = sealed_applicant(key, CODE, APPLICANT)
    assert set(wire) == {"sealed", "sms_opt_in"} and wire["sealed"].startswith("v1.")
    # The values in clear are nowhere in it (a 2-letter fragment such as "An" would match random base64).
    assert all(value not in wire["sealed"] for value in ("0912345678", "Nguyễn Văn An", "Bá Thước"))
    opened = opened_applicant(key, CODE, Applicant.model_validate(wire))
    assert opened == Applicant.model_validate(APPLICANT)
    assert opened_applicant(key, OTHER, Applicant.model_validate(wire)) is None  # bound to its dossier
    assert opened_applicant(new_key(), CODE, Applicant.model_validate(wire)) is None
    assert opened_applicant(None, CODE, Applicant.model_validate(wire)) is None  # the key erased


def test_sealing_twice_gives_two_texts_and_tampering_is_refused():
    key = new_key()
    first, second = seal(key, CODE, {"phone": "1"}), seal(key, CODE, {"phone": "1"})
    assert first != second and unseal(key, CODE, first) == unseal(key, CODE, second) == {"phone": "1"}
    tampered = first[:-2] + ("A" if first[-2] != "A" else "B") + first[-1]
    assert unseal(key, CODE, tampered) is None and unseal(key, CODE, "v0." + first[3:]) is None


def test_an_applicant_never_sealed_reads_as_it_is():
    clear = Applicant.model_validate(APPLICANT)
    assert opened_applicant(None, CODE, clear) is clear


def test_a_phone_is_indexed_alike_whatever_its_written_form():
    forms = ["0912345678", "+84 912 345 678", "84912345678", "0912.345.678"]
    assert len({citizen_id("s", f) for f in forms}) == 1 and citizen_id("s", forms[0]) != citizen_id("t", forms[0])
    # A number renumbered in 2018 is the same citizen under its old and new prefix, as the SMS side has it.
    assert citizen_id("s", "01683456789") == citizen_id("s", "0383456789")


def test_one_key_per_dossier_the_index_lists_the_citizens_dossiers_and_erasure_forgets_them():
    async def run():
        keys = DossierKeys(MemoryDatabase(), "index secret")
        made = await keys.keys_for({CODE: "0912345678", OTHER: "+84912345678"})
        again = await keys.keys_for({CODE: "0912345678"})  # a receipt sent again: the same key
        assert again[CODE] == made[CODE] == await keys.key_of(CODE) and made[OTHER] != made[CODE]
        assert await keys.dossiers_of("0912 345 678") == [CODE, OTHER]
        assert await keys.erase([CODE]) == 1 and await keys.key_of(CODE) is None
        assert await keys.dossiers_of("0912345678") == [OTHER]
        assert await keys.forget_citizen("0912345678", [OTHER]) == 1
        assert await keys.key_of(OTHER) is None and await keys.dossiers_of("0912345678") == []

    asyncio.run(run())


def test_a_receipt_sent_again_is_listed_once_in_its_citizens_index():
    """A portal's snapshot re-sends its receipt every time: the citizen's chain must not grow with it."""
    async def run():
        database = MemoryDatabase()
        keys = DossierKeys(database, "s")
        first = await keys.keys_for({CODE: "0912345678"})
        for _ in range(5):
            assert await keys.keys_for({CODE: "0912345678"}) == first
        # The same new dossier in requests at once: one key, one link, whoever wins.
        made = await asyncio.gather(*(keys.keys_for({OTHER: "0912345678"}) for _ in range(4)))
        assert len({found[OTHER] for found in made}) == 1
        assert len(database["citizen_dossiers"].docs) == 2 and len(database["dossier_keys"].docs) == 2
        assert await keys.dossiers_of("0912345678") == [CODE, OTHER]

    asyncio.run(run())


def test_dossiers_sent_again_cost_one_read_of_their_keys_and_change_nothing():
    """Issue 23: the portal's snapshots repeat each dossier's receipt, a sender retries. The keys are read first:
    trying the citizens' first links first cost a failed insert, which FerretDB writes again one document at a
    time (the portal's door ran at 61 % of its speed before the keys were sealed, the CloudEvents door at 62-72 %
    for receipts sent again after a restart)."""
    async def run():
        database = MemoryDatabase()
        keys = DossierKeys(database, "s")
        made = await keys.keys_for({CODE: "0912345678", OTHER: "0987654321"})
        keys_before = dict(database["dossier_keys"].docs)
        index_before = dict(database["citizen_dossiers"].docs)
        reads, inserts = count_reads(database), count_inserts(database)
        assert await keys.keys_for({CODE: "0912345678", OTHER: "0987654321"}) == made
        assert reads == ["dossier_keys"]  # one read of both keys (by `_id`, shared.mongo.get_many), the index not read
        assert inserts == []
        assert database["dossier_keys"].docs == keys_before and database["citizen_dossiers"].docs == index_before
        # Sent again with another phone: listed for that citizen too, the key unchanged.
        assert await keys.keys_for({CODE: "0987654321"}) == {CODE: made[CODE]}
        assert await keys.dossiers_of("0987654321") == [OTHER, CODE]

    asyncio.run(run())


def test_calls_at_once_are_served_together_and_a_dossier_given_two_phones_is_listed_for_both():
    async def run():
        database = MemoryDatabase()
        keys = DossierKeys(database, "s")
        inserts = count_inserts(database)
        codes = [f"000.00.38.H56-250701-{n:04d}" for n in range(1, 5)]
        made = await asyncio.gather(*(keys.keys_for({code: f"091234567{n}"}) for n, code in enumerate(codes)))
        assert inserts == ["citizen_dossiers", "dossier_keys"]  # one insert of the links, one of the keys
        assert [list(found) for found in made] == [[code] for code in codes]
        assert len({found[code] for found, code in zip(made, codes)}) == 4
        both = await asyncio.gather(keys.keys_for({CODE: "0912345678"}), keys.keys_for({CODE: "0987654321"}))
        assert both[0] == both[1] == {CODE: await keys.key_of(CODE)}
        assert CODE in await keys.dossiers_of("0912345678") and CODE in await keys.dossiers_of("0987654321")

    asyncio.run(run())


def test_new_citizens_dossiers_cost_no_read_of_the_index_a_known_citizens_next_one_is_appended():
    async def run():
        database = MemoryDatabase()
        keys = DossierKeys(database, "s")
        reads = count_reads(database)
        made = await keys.keys_for({CODE: "0912345678", OTHER: "0987654321"})
        assert reads == ["dossier_keys"] and len(database["dossier_keys"].docs) == 2  # their keys, in one read
        third = "000.00.38.H56-250701-0003"
        await keys.keys_for({third: "0912 345 678"})  # the first citizen's second dossier
        assert await keys.dossiers_of("0912345678") == [CODE, third]
        assert await keys.dossiers_of("0987654321") == [OTHER] and made[CODE] == await keys.key_of(CODE)

    asyncio.run(run())


def test_a_dossier_listed_before_a_crash_left_it_without_a_key_gets_its_key_and_stays_listed_once():
    async def run():
        database = MemoryDatabase()
        keys = DossierKeys(database, "s")
        await keys.keys_for({CODE: "0912345678"})
        del database["dossier_keys"].docs[CODE]  # listed, then the process died before the key's insert
        made = await keys.keys_for({CODE: "0912345678"})
        assert made[CODE] == await keys.key_of(CODE) and len(database["citizen_dossiers"].docs) == 1

    asyncio.run(run())


def test_a_citizens_next_dossier_costs_the_same_few_reads_however_many_they_have():
    """A company filing for its clients, or a benchmark, gives one phone to thousands of dossiers: its
    chain must not be read from the start for each new one (it was: quadratic, bench-e2e timed out)."""
    async def run():
        database = MemoryDatabase()
        keys = DossierKeys(database, "s", RecentKeys(100_000, 3600))  # as intake keeps them
        codes = [f"000.00.38.H56-250701-{n:04d}" for n in range(1, 62)]
        for code in codes[:60]:
            await keys.keys_for({code: "0912345678"})
        reads = count_reads(database)
        await keys.keys_for({codes[60]: "0912345678"})
        assert reads.count("citizen_dossiers") <= 2
        assert await keys.dossiers_of("0912345678") == codes

    asyncio.run(run())


@pytest.mark.parametrize("remembers", [False, True], ids=["another process", "the process that listed it"])
def test_a_dossier_erased_and_received_again_gets_no_key_and_is_not_listed_again(remembers):
    """Its receipt sent again after its retention or its citizen's erasure made a new key, which nothing erased,
    and listed it again (docs/security.md, "Retention of personal data"): the erased key's `_id` stays, marked."""
    async def run():
        database = MemoryDatabase()
        first = DossierKeys(database, "s", RecentKeys(100, 3600))
        await first.keys_for({CODE: "0912345678", OTHER: "0912345678"})
        await DossierKeys(database, "s").erase([CODE])
        first._recent.forget([CODE])  # as when its hour is over
        keys = first if remembers else DossierKeys(database, "s")
        assert await keys.keys_for({CODE: "0912345678"}) == {CODE: None}
        assert await keys.key_of(CODE) is None and await keys.dossiers_of("0912345678") == [OTHER]
        assert await keys.keys_for({CODE: "0987654321"}) == {CODE: None}  # with another number: the same
        assert await keys.dossiers_of("0987654321") == []
        assert await keys.erase([CODE]) == 0

    asyncio.run(run())


SECOND = "0987654321"  # a number a receipt sent again gave the dossier (a corrected number, another sender's)


async def listed_for_two(database: MemoryDatabase, race: bool) -> DossierKeys:
    """CODE's key made for 0912345678 and the dossier listed for SECOND as well: by a receipt sent again with it
    through another process, or (`race`) by a process whose insert of the new dossier's key lost to the first's."""
    keys = DossierKeys(database, "s")
    await keys.keys_for({CODE: "0912345678", OTHER: "0912345678"})
    stored = database["dossier_keys"]
    if race:  # the other process read no key of CODE's, then the first inserted it, then its own insert lost
        key, insert = stored.docs.pop(CODE), stored.insert_many

        def first_key_inserted_meanwhile(*args, **kwargs):
            stored.docs[CODE], stored.insert_many = key, insert
            return insert(*args, **kwargs)
        stored.insert_many = first_key_inserted_meanwhile
    await DossierKeys(database, "s").keys_for({CODE: SECOND})
    assert CODE in await keys.dossiers_of(SECOND) and CODE in await keys.dossiers_of("0912345678")
    return keys


@pytest.mark.parametrize("race", [False, True], ids=["sent again", "keys raced"])
def test_a_dossier_listed_for_a_second_number_is_unlisted_for_both_at_its_erasure(race):
    """Only the number the key was made for was unlisted at erasure: the dossier stayed listed for the other
    (docs/security.md, "Retention of personal data")."""
    async def run():
        database = MemoryDatabase()
        keys = await listed_for_two(database, race)
        assert await keys.erase([CODE]) == 1
        assert await keys.dossiers_of(SECOND) == [] and await keys.dossiers_of("0912345678") == [OTHER]
        assert database["dossier_listings"].docs == {}  # which numbers listed it: gone with it

    asyncio.run(run())


def test_a_citizens_erasure_unlists_their_dossier_for_a_second_number_and_forgets_their_other_listings():
    async def run():
        database = MemoryDatabase()
        keys = await listed_for_two(database, False)
        # The second number's citizen erased: the dossier is not theirs (its key stays), their listing of it goes.
        assert await keys.forget_citizen(SECOND, []) == 0 and await keys.key_of(CODE) is not None
        assert [link["blob"] for link in database["dossier_listings"].docs.values()] == [b'{"citizen":null}']
        # The dossier's own citizen erased: it is listed for nobody.
        await keys.keys_for({CODE: SECOND})
        assert await keys.forget_citizen("0912345678", [CODE, OTHER]) == 2
        assert await keys.dossiers_of(SECOND) == [] and database["dossier_listings"].docs == {}

    asyncio.run(run())


def count_calls(database: MemoryDatabase, *methods: str) -> list[str]:
    """The names of the collections these methods are called on, once a call (a query, an insert)."""
    calls: list[str] = []
    for name in ("dossier_keys", "citizen_dossiers"):
        collection = database[name]
        for method in methods:
            def counted(*args, _call=getattr(collection, method), _name=name, **kwargs):
                calls.append(_name)
                return _call(*args, **kwargs)
            setattr(collection, method, counted)
    return calls


def count_reads(database: MemoryDatabase) -> list[str]:
    """The names of the collections read from, once a query (`find_one`, or `find` of many keys)."""
    return count_calls(database, "find_one", "find")


def count_inserts(database: MemoryDatabase) -> list[str]:
    """The names of the collections written to, once an `insert_many`."""
    return count_calls(database, "insert_many")


def test_recent_keys_seal_a_dossier_sent_again_without_a_read_until_they_expire_or_are_erased():
    now = [100.0]

    async def run():
        database = MemoryDatabase()
        keys = DossierKeys(database, "s", RecentKeys(size=2, seconds=60, clock=lambda: now[0]))
        made = await keys.keys_for({CODE: "0912345678"})
        reads = count_reads(database)
        assert await keys.keys_for({CODE: "0912345678"}) == made and reads == []
        now[0] += 61  # expired: read again (an erased key would be missed from then on)
        assert await keys.keys_for({CODE: "0912345678"}) == made and reads == ["dossier_keys"]
        await keys.keys_for({OTHER: None, "000.00.38.H56-250701-0003": None})  # at most 2 kept: CODE dropped
        reads.clear()
        await keys.keys_for({CODE: "0912345678"})
        assert reads == ["dossier_keys"]
        await keys.erase([CODE])  # erased here: forgotten at once; sent again, it gets no key
        assert await keys.keys_for({CODE: "0912345678"}) == {CODE: None} and await keys.key_of(CODE) is None

    asyncio.run(run())


def test_a_dossier_that_never_ends_loses_its_key_once_it_went_unchanged_from_one_review_to_the_next():
    """A dossier abandoned open kept its key forever (docs/security.md, "Retention of personal data"): it is
    reviewed the idle and retention days after its receipt; unchanged since, its key goes; changed, it is reviewed
    again as long after; ended meanwhile, its end scheduled its erasure and the review leaves it."""
    now = [datetime(2026, 3, 2, 9, tzinfo=UTC)]
    ended = "000.00.38.H56-250701-0003"
    versions = {CODE: 2, OTHER: 2}  # the dossiers still open, with their steps, as processing's summaries show them

    async def changes(codes: list[str]) -> dict[str, int]:
        return {code: versions[code] for code in codes if code in versions}

    async def run():
        database = MemoryDatabase()
        keys = DossierKeys(database, "s")
        retention = Retention(database, keys, 30, lambda: now[0], idle_days=100, changes=changes)
        await retention.sweep()
        await keys.keys_for({CODE: "0912345678", OTHER: None, ended: None})
        await retention.review({CODE: 2, OTHER: 2, ended: 2})  # received today: reviewed on July 10th
        versions[OTHER] = 5  # a change later on
        now[0] += timedelta(days=130)  # July 10th, not over yet
        assert await retention.sweep() == 0
        now[0] += timedelta(days=1)
        assert await retention.sweep() == 1  # CODE's: unchanged since its receipt
        assert await keys.key_of(CODE) is None
        assert await keys.key_of(OTHER) is not None and await keys.key_of(ended) is not None
        assert await keys.dossiers_of("0912345678") == []
        now[0] += timedelta(days=130)  # OTHER is reviewed again 130 days after its first review
        assert await retention.sweep() == 0
        now[0] += timedelta(days=1)
        assert await retention.sweep() == 1 and await keys.key_of(OTHER) is None
        assert await keys.key_of(ended) is not None  # its own erase day is its end's

    asyncio.run(run())


def test_the_sweep_erases_each_key_on_its_day_and_not_before():
    now = [datetime(2026, 3, 2, 9, tzinfo=UTC)]

    async def run():
        database = MemoryDatabase()
        keys = DossierKeys(database, "s")
        retention = Retention(database, keys, 30, lambda: now[0])
        await retention.sweep()  # the first sweep starts today
        await keys.keys_for({CODE: "0912345678", OTHER: None})
        await retention.schedule({CODE: now[0] - timedelta(days=1), OTHER: now[0] - timedelta(days=100)})
        now[0] += timedelta(days=1)
        assert await retention.sweep() == 0  # OTHER, long ended, is due tomorrow (a day not swept yet)
        now[0] += timedelta(days=1)
        assert await retention.sweep() == 1  # the day after it
        assert await keys.key_of(OTHER) is None and await keys.key_of(CODE) is not None
        now[0] += timedelta(days=27)  # March 31st: CODE's day (its end + 30 days), not over yet
        assert await retention.sweep() == 0 and await keys.key_of(CODE) is not None
        now[0] += timedelta(days=1)
        assert await retention.sweep() == 1 and await keys.key_of(CODE) is None
        assert await retention.sweep() == 0

    asyncio.run(run())


def test_a_dossier_erased_before_it_had_a_key_gets_none_later():
    """Its receipt first sent without name and phone (no key made), or a citizen's erasure between the listing and
    the key: a receipt with them sent later must not make a key that nothing erases."""
    async def run():
        keys = DossierKeys(MemoryDatabase(), "s")
        assert await keys.erase([CODE]) == 0  # no key to count
        assert await keys.keys_for({CODE: "0912345678"}) == {CODE: None}
        assert await keys.dossiers_of("0912345678") == []

    asyncio.run(run())


def test_a_review_scheduled_twice_is_looked_at_and_scheduled_again_once():
    """Two replicas' sweeps, or a batch done again, schedule a dossier twice: copies must not multiply."""
    now = [datetime(2026, 3, 2, 9, tzinfo=UTC)]
    steps = {CODE: 3}

    async def changes(codes: list[str]) -> dict[str, int]:
        return {code: steps[code] for code in codes if code in steps}

    async def run():
        database = MemoryDatabase()
        retention = Retention(database, DossierKeys(database, "s"), 30, lambda: now[0], idle_days=100,
                              changes=changes)
        await retention.sweep()
        await retention.review({CODE: 2})
        await retention.review({CODE: 2})
        now[0] += timedelta(days=131)
        assert await retention.sweep() == 0  # changed: reviewed again, 130 days from today
        later = (now[0] + timedelta(days=130)).date().isoformat()
        links = await retention._buckets.read(later)
        assert [link["reviews"] for link in links] == [[[CODE, 3]]]

    asyncio.run(run())


@pytest.mark.parametrize("days", [0, -1, 29])
def test_idle_days_too_short_to_tell_an_abandoned_dossier_from_a_slow_one_are_refused(days):
    from pydantic import ValidationError
    from shared.settings import ServiceSettings

    with pytest.raises(ValidationError):
        ServiceSettings(personal_idle_days=days)


def test_a_review_from_a_last_change_long_ago_is_due_tomorrow_at_the_earliest():
    """`python -m services.processing review-open` reviews each dossier stored open from its last step."""
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)

    async def run():
        database = MemoryDatabase()
        retention = Retention(database, DossierKeys(database, "s"), 30, lambda: now, idle_days=100)
        await retention.review({CODE: 4, OTHER: 1}, {CODE: now - timedelta(days=1000), OTHER: now - timedelta(days=10)})
        assert [link["reviews"] for link in await retention._buckets.read("2026-03-03")] == [[[CODE, 4]]]
        assert [link["reviews"] for link in await retention._buckets.read("2026-06-30")] == [[[OTHER, 1]]]

    asyncio.run(run())
