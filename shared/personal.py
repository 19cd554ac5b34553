"""The applicant's personal data under a key of its dossier's own, erased at retention (crypto-shredding,
docs/security.md "Retention of personal data", finding 6; Nghị định 13/2023/NĐ-CP).

- `dossier_keys`: `_id` = the dossier code, a random 256-bit data key, and the citizen's blind index id.
  Intake seals a receipt's applicant (all but `sms_opt_in`) with AES-GCM under it, the dossier code as
  associated data, before anything is published: topics, dead-letter topics and stores carry only the
  sealed text (`v1.` + base64url of nonce and ciphertext). Whoever needs the clear value reads the key
  by `_id` and opens it. Erasing the key makes every copy unreadable at once.
- `citizen_dossiers`: the blind index, for a citizen's rights (export, erasure): per HMAC-SHA256 of the
  normalised phone number under the index secret, a chain of their dossier codes (shared.mongo.Chain),
  each listed once however often its receipt is sent (`DossierKeys.keys_for`).
- `dossier_listings`: per dossier code, a chain of the other citizens it is listed for (a receipt sent again
  with another number) than the one its key was made for: at its erasure, it is unlisted for each of them too.
- `dossier_erasures`: per UTC day, a chain of the dossiers whose keys are erased that day (their end +
  the retention days) and of the open ones reviewed that day (their receipt + the idle and retention days: an
  abandoned dossier's key goes too); `dossier_erasures_state` the next day to sweep. Processing schedules a
  dossier at its receipt and when it ends, and sweeps, day by day, what is due.

Every read is by `_id` (shared/mongo.py); writes several processes make are insert-only links.

`python -m shared.personal export --phone 09…` prints what is held for a citizen; `erase --phone 09…`
erases it (their keys, their index entry, notifications' numbers and texts for their dossiers).
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from bson import Binary
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared.events import Applicant
from shared.group_commit import GroupCommit
from shared.mongo import Chain, KeyReads, delete_all, get_many, insert_new, link_id, unpack
from shared.phones import normalise_phone
from shared.settings import ServiceSettings

CHAIN_TAIL = 32  # the dossiers a process remembers a citizen's chain listed last
CHAINS_KEPT = 10_000  # citizens whose chain it remembers (at most ~30 MB)
VERSION = "v1."  # of the sealed form: AES-256-GCM, 12-byte nonce, associated data = the dossier code
CLEAR = ("sms_opt_in",)  # what stays readable: whether the citizen asked for SMS, not who they are


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, code: str, clear: dict[str, Any]) -> str:
    """`clear` sealed under the dossier's key, bound to its code."""
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, orjson.dumps(clear), code.encode())
    return VERSION + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def unseal(key: bytes | None, code: str, sealed: str) -> dict[str, Any] | None:
    """What `seal` sealed; None without the key, under another key or for another dossier code."""
    if key is None or not sealed.startswith(VERSION):
        return None
    try:
        raw = base64.urlsafe_b64decode(sealed[len(VERSION):] + "=" * (-len(sealed) % 4))
        return orjson.loads(AESGCM(key).decrypt(raw[:12], raw[12:], code.encode()))
    except (InvalidTag, ValueError):
        return None


def sealed_applicant(key: bytes | None, code: str, applicant: dict[str, Any]) -> dict[str, Any]:
    """A receipt's `applicant` as intake publishes it: `sealed` and the fields of CLEAR; only those when the
    dossier's key was erased (a receipt sent again after its retention or its citizen's erasure)."""
    clear = {name: value for name, value in applicant.items() if name not in (*CLEAR, "sealed")}
    kept = {name: applicant[name] for name in CLEAR if name in applicant}
    return kept if key is None else {"sealed": seal(key, code, clear)} | kept


def opened_applicant(key: bytes | None, code: str, applicant: Applicant) -> Applicant | None:
    """The applicant in clear: as it is when it was never sealed (a record from before), opened with
    the dossier's key, or None when it cannot be opened (the key erased)."""
    if applicant.sealed is None:
        return applicant
    clear = unseal(key, code, applicant.sealed)
    return None if clear is None else Applicant.model_validate(clear | {"sms_opt_in": applicant.sms_opt_in})


def citizen_id(secret: str, phone: str) -> str:
    """The blind index's id of a citizen: a keyed hash of their number as the SMS side writes it
    (shared/phones.py: renumbered prefixes too), or of its digits when it is no mobile number."""
    number = normalise_phone(phone) or re.sub(r"\D", "", phone)
    return hmac.new(secret.encode(), number.encode(), hashlib.sha256).hexdigest()


class RecentKeys:
    """Keys a process made or read lately, in its memory only, each for `seconds` from then (an erased
    key is then read again, and missed), at most `size` of them, the oldest dropped first: a receipt
    sent again (a portal re-sends its snapshot) is sealed without a read or a hash of its phone (one
    sent again with another phone meanwhile is listed for it once the key is read again). `size` 0
    keeps none. Also what a process remembers of the citizens' chains (`DossierKeys._append_unlisted`)."""

    def __init__(self, size: int = 0, seconds: float = 0, clock: Callable[[], float] = time.monotonic):
        self.size, self.seconds, self._clock = size, seconds, clock
        self._keys: dict[str, tuple[Any, float]] = {}  # code → key, until when; oldest first

    def get(self, codes: Iterable[str]) -> dict[str, Any]:
        now = self._clock()
        return {code: entry[0] for code in codes if (entry := self._keys.get(code)) and entry[1] > now}

    def put(self, keys: dict[str, Any]) -> None:
        until = self._clock() + self.seconds
        for code, key in keys.items() if self.size else ():
            self._keys.pop(code, None)
            self._keys[code] = (key, until)
        while len(self._keys) > self.size:
            del self._keys[next(iter(self._keys))]

    def forget(self, codes: Iterable[str]) -> None:
        for code in codes:
            self._keys.pop(code, None)


class DossierKeys:
    """`dossier_keys` and the citizens' blind index (`citizen_dossiers`). `recent`: the keys `keys_for`
    made or read lately, kept in memory (none unless given: intake gives some, services/intake/sealing.py)."""

    def __init__(self, database: AsyncDatabase, index_secret: str = "", recent: RecentKeys | None = None):
        self._keys = database["dossier_keys"]
        self._key_of = KeyReads(self._keys)  # the lookups': many at once are read together
        self._index = Chain(database["citizen_dossiers"])
        self._listings = Chain(database["dossier_listings"])
        self._secret = index_secret
        self._recent = recent or RecentKeys()
        # Each citizen's chain as this process last saw it: where it ends, and the last CHAIN_TAIL dossiers
        # it lists (for as long as the recent keys, at most CHAINS_KEPT citizens).
        self._chains = RecentKeys(min(self._recent.size, CHAINS_KEPT), self._recent.seconds, self._recent._clock)
        # A process's requests for one citizen append in turn (striped by citizen), each from where the one
        # before left the chain, instead of racing for the same link and reading on after every loss.
        self._appending = [asyncio.Lock() for _ in range(256)]
        self._gathered = GroupCommit(self._keys_for_all)

    async def key_of(self, code: str) -> bytes | None:
        found = await self._key_of(code)
        return bytes(found["key"]) if found and "key" in found else None

    async def made_for(self, code: str, phone: str) -> bool:
        """Whether the dossier's key was made for the citizen of this number (its first receipt gave it)."""
        found = await self._keys.find_one({"_id": str(code)})
        return bool(found) and found.get("citizen") == citizen_id(self._secret, phone)

    def same_citizen(self, phone: str, other: str) -> bool:
        """Whether two numbers, in any written form, are one citizen's, as the index tells them."""
        return citizen_id(self._secret, phone) == citizen_id(self._secret, other)

    async def keys_of(self, codes: Iterable[str]) -> dict[str, bytes]:
        """The keys these dossiers still have, read by `_id` in one query."""
        return {code: bytes(doc["key"]) for code, doc in (await get_many(self._keys, codes)).items() if "key" in doc}

    async def keys_for(self, owners: dict[str, str | None]) -> dict[str, bytes | None]:
        """The keys of these dossiers (code → the phone given at receipt, or None), made for those that
        have none; each listed once in its citizen's index, before its key is made (listed without a key
        after a crash is harmless: the next attempt finds it listed). None for a dossier whose key was
        erased (`erase`: retention, a citizen's erasure): its receipt sent again must not bring back what was
        erased, nor its listing. A recent key (`RecentKeys`) costs
        nothing. The others are read or made with those of the calls that come meanwhile (a group
        commit): a dossier sent again costs a share of one read of many keys, a new citizen's dossier a
        share of that read and two inserts (`_list_once`)."""
        recent = self._recent.get(owners)
        rest = {code: phone for code, phone in owners.items() if code not in recent}
        return recent | (await self._gathered(rest) if rest else {})

    async def _keys_for_all(self, calls: list[dict[str, str | None]]) -> list[dict[str, bytes | None]]:
        """`keys_for` of calls that came together, in one go; a dossier given two phones by two of them
        takes one go for each (its key is one, and it is listed for both)."""
        goes: list[dict[str, str | None]] = []
        for owners in calls:
            go = next((go for go in goes if all(go.get(code, phone) == phone for code, phone in owners.items())), None)
            if go is None:
                goes.append(dict(owners))
            else:
                go.update(owners)
        found: dict[str, bytes | None] = {}
        for go in goes:
            found |= await self._keys_for_one_go(go)
        return [{code: found[code] for code in owners} for owners in calls]

    async def _keys_for_one_go(self, owners: dict[str, str | None]) -> dict[str, bytes | None]:
        """One insert of the new keys decides between concurrent writers; the losers read the winners' (or
        find the key erased: the dossier is then taken out of its citizen's chain again)."""
        citizens = {code: citizen_id(self._secret, phone) if phone else None for code, phone in owners.items()}
        there = await self._list_once(citizens)
        made = {code: new_key() for code in citizens if code not in there}
        inserted = await insert_new(self._keys, [{"_id": code, "key": Binary(key), "citizen": citizens[code]}
                                                 for code, key in made.items()])
        found: dict[str, bytes | None] = there | {code: key for code, key in made.items() if code in inserted}
        lost = [code for code in made if code not in inserted]
        winners = await get_many(self._keys, lost)
        found |= {code: bytes(doc["key"]) for code, doc in winners.items() if "key" in doc}
        # Listed for its citizen (listing comes first), then another's key won: that listing is recorded now.
        await self._record_listed({code: citizens[code] for code, doc in winners.items() if _listed_for_another(
            doc, citizens[code])})
        erased = {code: None for code in lost if code not in found}
        await self._unlist_erased({code: citizens[code] for code in erased})
        self._recent.put(found | erased)
        return found | erased

    async def _unlist_erased(self, citizens: dict[str, str | None]) -> None:
        """Erased dossiers (code → the citizen a receipt sent again gave) out of those citizens' chains: listed
        before their key's insert told they were erased (erased after their keys were read)."""
        theirs: dict[str, set[str]] = {}
        for code, citizen in citizens.items():
            if citizen:
                theirs.setdefault(citizen, set()).add(code)
        self._chains.forget(theirs)
        for citizen, codes in theirs.items():
            await self._index.blank(citizen, "dossier", codes)

    async def _list_once(self, citizens: dict[str, str | None]) -> dict[str, bytes | None]:
        """Each dossier (code → its citizen, or None) listed in its citizen's chain unless it is; returns
        the keys those that have one have (None: erased, not listed again). The keys are read first, in
        one query: a key made for this citizen means the dossier is listed (listing comes first), so a
        dossier sent again costs that read alone. (Trying the citizens' first links first spared a new
        dossier the read, but a batch of links already there fails, and FerretDB writes it again one
        document at a time: side by side, the CloudEvents door read first took receipts sent again after
        a restart at 138 % of the speed, new ones at 122 %; docs/benchmarks.md.) A citizen's first link for
        all of their dossiers in one insert: a new citizen's dossier needs no read of the index. Where
        that link is taken, the citizen's chain is read and only what it does not list is appended."""
        docs = await get_many(self._keys, citizens)
        theirs: dict[str, list[str]] = {}
        for code, citizen in citizens.items():
            if citizen and _to_list(docs.get(code), citizen):
                theirs.setdefault(citizen, []).append(code)
        await self._record_listed({code: citizen for citizen, codes in theirs.items() for code in codes
                                   if _listed_for_another(docs.get(code), citizen)})
        firsts = await insert_new(self._index.collection,
                                  [Chain.link(citizen, 0, {"dossier": codes[0]}) for citizen, codes in theirs.items()])
        unsure = {citizen: codes[1:] if link_id(citizen, 0) in firsts else codes for citizen, codes in theirs.items()}
        await asyncio.gather(*(self._append_unlisted(citizen, codes) for citizen, codes in unsure.items() if codes))
        return {code: bytes(doc["key"]) if "key" in doc else None for code, doc in docs.items()}

    async def _append_unlisted(self, citizen: str, codes: list[str]) -> None:
        """Append to the citizen's chain each of these dossiers it does not list yet. A link claimed by
        another writer meanwhile is read and checked too, so that two writers of one dossier list it once.
        The chain is read from where this process last saw it end (from its start after a restart, or
        once that is forgotten): a citizen with thousands of dossiers (a company filing for its clients)
        costs a read or two for the next one, not one per link. The dossiers it then listed last are
        remembered too: a dossier listed before its key's insert failed is not listed again."""
        async with self._appending[hash(citizen) % len(self._appending)]:
            await self._append_in_turn(citizen, codes)

    async def _append_in_turn(self, citizen: str, codes: list[str]) -> None:
        n, tail = self._chains.get([citizen]).get(citizen, (0, ()))
        listed = set(tail)
        unlisted = [code for code in codes if code not in listed]
        seen = list(tail)
        while unlisted:
            links = await self._index.read(citizen, n)
            n += len(links)
            seen += [link["dossier"] for link in links]
            listed.update(seen)
            unlisted = [code for code in unlisted if code not in listed]
            while unlisted and await self._index.claim(citizen, n, {"dossier": unlisted[0]}):
                seen.append(unlisted[0])
                unlisted, n = unlisted[1:], n + 1
        self._chains.put({citizen: (n, tuple(seen[-CHAIN_TAIL:]))})

    async def _record_listed(self, citizens: dict[str, str]) -> None:
        """Record that each dossier (code → a citizen its key was not made for) is listed for that citizen too,
        before it is (or, when another's key won the race, just after), unless it is recorded already."""
        for code, citizen in citizens.items():
            links = await self._listings.read(code)
            if citizen not in (link["citizen"] for link in links):
                await self._listings.append(code, {"citizen": citizen}, hint=len(links))

    async def _listed_with(self, codes: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The citizens other than their keys' each of these dossiers is recorded as listed for (few have any:
        one read of their first links)."""
        firsts = await get_many(self._listings.collection, codes)
        return {code: [unpack(firsts[code]["blob"]), *await self._listings.read(code, 1)] for code in firsts}

    async def dossiers_of(self, phone: str) -> list[str]:
        """The dossier codes the index lists for this number (the citizen's rights), once each."""
        return _listed(await self._index.read(citizen_id(self._secret, phone)))

    async def erase(self, codes: Iterable[str], dropping: str | None = None) -> int:
        """Erase these dossiers' keys and their links in the citizens' index, for the citizen each key was
        made for and the others each was listed for (but `dropping`, whose whole entry the caller deletes),
        each citizen's chain read once; returns how many keys. Each code's `_id` stays behind, marked
        `erased` (also for a dossier that had no key yet): a receipt sent again then gets no new key
        (`keys_for`)."""
        codes = list(dict.fromkeys(codes))
        self._recent.forget(codes)
        found = {code: doc for code, doc in (await get_many(self._keys, codes)).items() if "key" in doc}
        others = await self._listed_with(codes)
        listed: dict[str, set[str]] = {}
        for code in codes:
            for citizen in [found.get(code, {}).get("citizen"), *(link["citizen"] for link in others.get(code, []))]:
                if citizen and citizen != dropping:
                    listed.setdefault(citizen, set()).add(code)
        self._chains.forget(listed)
        for citizen, theirs in listed.items():
            await self._index.blank(citizen, "dossier", theirs)
        for code in codes:  # also a dossier with no key yet: a receipt sent later must not make one
            await self._keys.replace_one({"_id": code}, {"_id": code, "erased": True}, upsert=True)
        await delete_all(self._listings.collection, [link_id(code, n) for code, links in others.items()
                                                     for n in range(len(links))])
        return len(found)

    async def forget_citizen(self, phone: str, codes: list[str]) -> int:
        """Erase the keys of these dossiers of the citizen's (`_theirs`: not those another sender listed for their
        number) and their whole index entry; returns how many keys."""
        citizen = citizen_id(self._secret, phone)
        self._chains.forget([citizen])
        links = await self._index.read(citizen)
        erased = await self.erase(codes, dropping=citizen)  # the whole entry goes below
        # Where another citizen's dossier is listed for them (a receipt gave their number), that record goes too.
        others = await self._listed_with([code for code in _listed(links) if code not in codes])
        for code, recorded in others.items():
            await self._listings.blank(code, "citizen", {citizen}, recorded)
        for n in range(len(links)):
            await self._index.collection.delete_one({"_id": link_id(citizen, n)})
        return erased

def _to_list(key: dict[str, Any] | None, citizen: str) -> bool:
    """Whether a dossier whose key document is `key` (None: none read) may need listing for this citizen: its key
    was not made for them (listing comes first), and not erased (an erased dossier is not listed again)."""
    return key is None or ("erased" not in key and key.get("citizen") != citizen)


def _listed_for_another(key: dict[str, Any] | None, citizen: str | None) -> bool:
    """Whether a dossier whose key document is `key` is listed for `citizen`, not the citizen its key was made for."""
    return bool(key and citizen and "key" in key and key.get("citizen") != citizen)


def _listed(links: list[dict[str, Any]]) -> list[str]:
    """The dossier codes a citizen's chain lists, once each (a blanked link lists none)."""
    return list(dict.fromkeys(link["dossier"] for link in links if link["dossier"]))


class Retention:
    """When each dossier's key is erased: scheduled at its end, swept day by day (the injectable clock).

    A dossier that never ends (abandoned, or its end never sent) would keep its key: each is also reviewed
    `idle_days` + `days` after its receipt. A review erases the key of a dossier still open and unchanged since it
    was scheduled (`changes` tells, for the dossiers still open, a count that grows with each change: processing
    gives the steps its stored summary shows, which a foreign sender's events do not add to), and schedules another for one that changed meanwhile, from the review's day. So an
    abandoned dossier's key goes between `idle_days` + `days` and twice that after its last change."""

    def __init__(self, database: AsyncDatabase, keys: DossierKeys, days: float, clock: Callable[[], datetime],
                 idle_days: float = 365, changes: Callable[[list[str]], Awaitable[dict[str, int]]] | None = None):
        self._buckets = Chain(database["dossier_erasures"])
        self._state = database["dossier_erasures_state"]
        self._keys, self._days, self._clock = keys, days, clock
        self._idle_days, self._changes = idle_days, changes
        self._hints: dict[str, int] = {}  # the next free link of a day's chain, as this process knows it

    def erase_day(self, ended_at: datetime) -> date:
        """The day a dossier that ended then is erased: its end + the retention days, never before
        tomorrow (a day already swept is not read again)."""
        return max((ended_at + timedelta(days=self._days)).date(), self._clock().date() + timedelta(days=1))

    async def schedule(self, ended: dict[str, datetime]) -> None:
        """Put each ended dossier (code → end) in its erase day's chain, one link per day and call."""
        days: dict[str, list[str]] = {}
        for code, ended_at in ended.items():
            days.setdefault(self.erase_day(ended_at).isoformat(), []).append(code)
        for day, codes in sorted(days.items()):
            await self._append(day, {"dossiers": sorted(codes)})

    async def review(self, opened: dict[str, int], since: dict[str, datetime] | None = None) -> None:
        """Review these open dossiers (code → their count of changes now) `idle_days` + `days` after their last
        change (`since`, by code; now unless given): one link a day."""
        now, days = self._clock(), {}
        for code, changes in opened.items():
            day = self.erase_day((since or {}).get(code, now) + timedelta(days=self._idle_days)).isoformat()
            days.setdefault(day, []).append((code, changes))
        for day, reviews in sorted(days.items()):
            await self._append(day, {"reviews": sorted(reviews)})

    async def _append(self, day: str, link: dict[str, Any]) -> None:
        n = await self._buckets.append(day, link, self._hints.get(day, 0))
        self._hints[day] = n + 1

    async def sweep(self) -> int:
        """Erase the keys of every day before today not swept yet (its reviews done); returns how many keys."""
        today = self._clock().date()
        state = await self._state.find_one({"_id": "sweep"})
        day = date.fromisoformat(state["next_day"]) if state else today
        erased = 0
        while day < today:
            links = await self._buckets.read(day.isoformat())
            for link in links:
                erased += await self._keys.erase(link.get("dossiers", []))
            # A day's reviews at once: one scheduled twice (two replicas' sweeps, a batch done again) is looked at once.
            erased += await self._reviewed({code: n for link in links for code, n in link.get("reviews", [])})
            day += timedelta(days=1)
            await self._state.replace_one({"_id": "sweep"}, {"next_day": day.isoformat()}, upsert=True)
        if state is None:
            await self._state.replace_one({"_id": "sweep"}, {"next_day": day.isoformat()}, upsert=True)
        return erased

    async def _reviewed(self, scheduled: dict[str, int]) -> int:
        """A review: the keys of the dossiers still open and unchanged erased, the changed reviewed again later;
        one that ended meanwhile was scheduled at its end."""
        if not scheduled or self._changes is None:
            return 0
        now = await self._changes(list(scheduled))
        await self.review({code: n for code, n in now.items() if code in scheduled and n != scheduled[code]})
        return await self._keys.erase(code for code, n in scheduled.items() if now.get(code) == n)


async def held_for(database: AsyncDatabase, keys: DossierKeys, phone: str) -> dict[str, Any]:
    """What is held for the citizen of this number: their dossiers' applicants, opened, and their SMS."""
    # The one place that spans the services' stores: imported here, not at the top (shared sits below services).
    from services.notifications.store import MessageStore

    messages = MessageStore(database.client, database.name)
    held: dict[str, Any] = {"dossiers": [], "messages": []}
    for code, applicant in (await _theirs(database, keys, phone)).items():
        held["dossiers"].append({"dossier_code": code, "applicant": applicant.model_dump(exclude_none=True)
                                 if applicant else None})
        held["messages"] += [{"dossier_code": code, "trigger": m.trigger, "created_at": m.created_at.isoformat(),
                              "to": body.recipient, "text": body.text}
                             for m, body, _ in await messages.of_dossier(code) if body]
    return held


async def _theirs(database: AsyncDatabase, keys: DossierKeys, phone: str) -> dict[str, Applicant | None]:
    """The dossiers the index lists for this number that are the citizen's, with their applicant opened: those
    whose applicant, as processing accepted it, has this number (or, not processed yet, whose key was made for
    it). A receipt anyone sends lists its dossier for the phone it gives, before processing refuses a foreign
    one: that listing must not open, nor erase, another citizen's applicant."""
    from services.processing.store import DossierStore  # as in held_for

    dossiers = DossierStore(database.client, database.name)
    found: dict[str, Applicant | None] = {}
    for code in await keys.dossiers_of(phone):
        shown = await dossiers.view(code)
        if shown is None:  # not processed yet
            if await keys.made_for(code, phone):
                found[code] = None
            continue
        applicant = Applicant.model_validate(shown[0]["applicant"]) if shown[0]["applicant"] else None
        opened = opened_applicant(await keys.key_of(code), code, applicant) if applicant else None
        if opened is not None and opened.phone and keys.same_citizen(opened.phone, phone):
            found[code] = opened
    return found


async def erase_citizen(database: AsyncDatabase, keys: DossierKeys, phone: str) -> dict[str, int]:
    """Erase what is held for the citizen of this number: their dossiers' keys (every sealed copy
    becomes unreadable), notifications' numbers and texts of those dossiers and where they stand (a
    hash of the number), then the index entry."""
    from services.notifications.store import MessageStore  # as in held_for

    messages = MessageStore(database.client, database.name)
    codes = list(await _theirs(database, keys, phone))
    texts = 0
    for code in codes:
        for message, body, _ in await messages.of_dossier(code):
            if body:
                texts += (await database["notifications_bodies"].delete_one({"_id": message.id})).deleted_count
        await database["notifications_citizens"].delete_one({"_id": code})
    return {"dossiers": len(codes), "keys": await keys.forget_citizen(phone, codes), "texts": texts}


async def command(action: str, phone: str, settings: ServiceSettings) -> dict[str, Any]:
    """`export` or `erase` for one citizen (Nghị định 13/2023/NĐ-CP; the Law on Personal Data Protection)."""
    client: AsyncMongoClient = AsyncMongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000)
    try:
        database = client[settings.mongo_database]
        keys = DossierKeys(database, settings.personal_index_secret.get_secret_value())
        if action == "export":
            return await held_for(database, keys, phone)
        return await erase_citizen(database, keys, phone)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shared.personal", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("export", "erase"))
    parser.add_argument("--phone", required=True, help="the citizen's number, in any form (09…, +84 9…)")
    args = parser.parse_args(argv)
    settings = ServiceSettings()
    if not settings.personal_index_secret.get_secret_value():
        # Without the secret the index is keyed otherwise: an export would find nothing, silently.
        raise SystemExit("the citizens' index needs its secret: DOSSIER_PERSONAL_INDEX_SECRET, or the stack's secrets "
                         "(DOSSIER_SECRETS_DIR=.local/secrets DOSSIER_ENVIRONMENT=local on the local stack)")
    out = asyncio.run(command(args.action, args.phone, settings))
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2 | orjson.OPT_NAIVE_UTC).decode() + "\n")


if __name__ == "__main__":
    main()
