"""Messages in MongoDB, insert-only and read by key (shared.mongo): several replicas and the
delivery reports write side by side, and FerretDB's updates could lose one of two writers.

- `notifications_messages`: one document per message, written before it is sent: its id derives
  from the dossier step, so a step gives one message however often its status event is seen.
- `notifications_bodies`: the number and text of each message, apart, so that purging them after
  the retention deletes them and leaves the messages and their statuses.
- `notifications_moves`: one document per status a message reached (`<id>/sent`), or per sending
  attempt (`<id>/sending/<n>`: inserting it is the claim, a replica that loses the race does not
  send). A message's status is the furthest it reached, so it only moves forward whatever order the
  moves and delivery reports come in, and recording one twice changes nothing.
- `notifications_dossiers`: what the lookup shows, per dossier: a chain of the messages decided and
  the moves recorded (written before the documents above, so a crash leaves nothing out of it), and
  in `notifications_views` a summary of that chain, which the lookup writes when it read new links
  (written when a message ended, it cost a dozen key reads a message: a third of a burst's time).
- `notifications_pending`: the ids of the messages still to send, read whole at start and at each
  reload (the messages another replica left behind: only those the sender does not hold are read
  further); a message leaves it once sent or ended.
- `notifications_daily`: per number and local day, slots 0 … limit − 1; taking one is a claim, so
  the daily limit holds across replicas. The number appears only as a keyed hash.
- `notifications_purge`: per UTC day, PURGE_CHAINS chains (`2026-12-05|0` …) of the bodies and slots
  written that day, a note going to the chain of its first id, so that senders side by side seldom
  claim the same link: the purge deletes them by key after the retention (and reads the one chain a
  day, `2026-12-05`, the service wrote before).
- `notifications_citizens`: per dossier, where it stands (state, appointment) and a keyed hash of the
  phone given at receipt, to answer the SMS a citizen sends (MO) only to that phone. Written by the
  consumer of the dossier's partition: inserted from its first status record, replaced after (an upsert
  costs FerretDB nine times an insert's CPU); the number itself is not kept.
"""

import asyncio
import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient

from services.notifications.messages import ATTEMPTS, STOPS, Body, Decision, Listed, Message, MessageStatus, Move, \
    move_id
from shared.mongo import Chain, as_utc, delete_all, get_many, insert_new, link_id, written

PURGE_CHAINS = 16  # a day's purge notes are spread over this many chains
MESSAGE_FIELDS = ("_id", "dossier", "trigger", "status", "created_at", "parts", "coding")  # the lookup's (Listed)
Stored = tuple[Message, Body | None, list[Move]]  # a message, its number and text unless purged, its moves
Moved = tuple[Message, Move]  # a status a message reached, or one sending attempt
Wanted = tuple[str, str, int]  # a daily slot wanted: (number, local day, the first one that may be free)
KNOWN = 50_000  # chain ends and moves recorded, remembered by this process (a burst's worth)


class _Hints:
    """The length of chains this process wrote lately: the next append starts there."""

    def __init__(self, size: int = KNOWN):
        self._known: OrderedDict[str, int] = OrderedDict()
        self._size = size

    def get(self, key: str) -> int:
        return self._known.get(key, 0)

    def wrote(self, key: str, n: int) -> None:
        self._known[key] = max(self._known.get(key, 0), n + 1)
        self._known.move_to_end(key)
        while len(self._known) > self._size:
            self._known.popitem(last=False)


class _Seen:
    """The moves this process recorded (or found recorded) lately: recording one again needs no read."""

    def __init__(self, size: int = KNOWN):
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def __contains__(self, move_id: str) -> bool:
        return move_id in self._ids

    def add(self, ids: list[str]) -> None:
        for i in ids:
            self._ids[i] = None
            self._ids.move_to_end(i)
        while len(self._ids) > self._size:
            self._ids.popitem(last=False)


class MessageStore:
    def __init__(self, client: AsyncMongoClient, database: str, number_key: str = ""):
        db = client[database]
        self._messages = db["notifications_messages"]
        self._bodies = db["notifications_bodies"]
        self._moves = db["notifications_moves"]
        self._dossiers = Chain(db["notifications_dossiers"], summaries=db["notifications_views"])
        self._pending = db["notifications_pending"]
        self._daily = db["notifications_daily"]
        self._purge = Chain(db["notifications_purge"])
        self._state = db["notifications_state"]
        self._citizens = db["notifications_citizens"]
        self._number_key = number_key.encode()
        self._hints = _Hints()
        self._seen = _Seen()

    async def _append(self, chain: Chain, key: str, doc: dict[str, Any]) -> None:
        self._hints.wrote(key, await chain.append(key, doc, self._hints.get(key)))

    async def _append_many(self, chain: Chain, docs: dict[str, dict[str, Any]]) -> None:
        """Append one document to each key's chain: one insert of every link where this process saw
        its chain end, then one append each for the links another writer took meanwhile."""
        at = {key: self._hints.get(key) for key in docs}
        taken = await insert_new(chain.collection, [Chain.link(key, n, docs[key]) for key, n in at.items()])
        late = []
        for key, n in at.items():
            if link_id(key, n) in taken:
                self._hints.wrote(key, n)
            else:
                late.append(key)
        await asyncio.gather(*(self._append(chain, key, docs[key]) for key in late))

    async def create(self, decided: list[Decision]) -> set[str]:
        """Store the messages not stored yet (a redelivered status event asks for them again), with the
        number and text of those to send; returns the ids of those stored now. The lookup's chain and
        the pending list come first: a crash in between leaves at most an entry for a message stored
        at the redelivery."""
        by_dossier: dict[str, list[dict[str, Any]]] = {}
        for d in decided:
            by_dossier.setdefault(d.message.dossier, []).append(Listed.of(d.message).to_entry())
        await self._append_many(self._dossiers, {code: {"messages": mine} for code, mine in by_dossier.items()})
        bodies = [d.body for d in decided if d.body]
        await insert_new(self._pending, [{"_id": b.id} for b in bodies])
        if bodies:
            await self._forget_later("bodies", [b.id for b in bodies], bodies[0].created_at)
        await insert_new(self._bodies, [b.to_doc() for b in bodies])  # before the message: never one without its text
        return await insert_new(self._messages, [d.message.to_doc() for d in decided])

    async def record(self, message: Message, move: Move) -> bool:
        """Record that a message reached a status (or attempt n of sending); False if already recorded."""
        return move.id in await self.record_many([(message, move)])

    async def record_many(self, moved: list[Moved]) -> set[str]:
        """Record the moves not recorded yet; returns the ids of those recorded now. A message reaching
        a status that stops its sending leaves the pending list. Written in this order, which a retry
        after a failure completes: the lookup's chain (one entry per dossier), the moves, the pending
        list. Nothing is read first: a move this process recorded lately is known, and another (a
        report repeated, a claim another replica won) is refused by its `_id`, its lookup entry
        written twice (the lookup shows a move once, by its id)."""
        fresh = {move.id: (message, move) for message, move in moved if move.id not in self._seen}
        if not fresh:
            return set()
        by_dossier: dict[str, list[dict[str, Any]]] = {}
        for message, move in fresh.values():
            by_dossier.setdefault(message.dossier, []).append(move.to_doc())
        await self._append_many(self._dossiers, {code: {"moves": docs} for code, docs in by_dossier.items()})
        recorded = await insert_new(self._moves, [move.to_doc() for _, move in fresh.values()])
        self._seen.add(list(fresh))
        await delete_all(self._pending, list({m.id for m, move in fresh.values() if move.status.stops_sending}))
        return recorded

    async def message(self, message_id: str) -> Message | None:
        doc = await self._messages.find_one({"_id": str(message_id)})
        return Message.from_doc(doc) if doc else None

    async def handed_over(self, message_id: str) -> bool:
        """Whether a gateway may have the message: it was sent, or an attempt is recorded that the
        gateway did not refuse (handed over, its `sent` not recorded yet). Mostly one read."""
        if await self._moves.find_one({"_id": move_id(message_id, MessageStatus.SENT)}) is not None:
            return True
        moves = await self.moves_of(message_id)
        tried = {m.attempt for m in moves if m.status is MessageStatus.SENDING}
        refused = {m.attempt for m in moves if m.status is MessageStatus.REFUSED}
        return bool(tried - refused)

    async def pending(self, held: Callable[[str], bool] = lambda _: False) -> list[Stored]:
        """The messages still to send but those the caller `held` already, with their bodies and moves
        (the pending list is short: its ids only are read whole)."""
        ids = [doc["_id"] async for doc in self._pending.find({}) if not held(doc["_id"])]
        messages, bodies = await asyncio.gather(get_many(self._messages, ids), get_many(self._bodies, ids))
        moves = await asyncio.gather(*(self.moves_of(i) for i in messages))
        return [(Message.from_doc(messages[i]), Body.from_doc(bodies[i]) if i in bodies else None, mine)
                for i, mine in zip(messages, moves, strict=True)]

    async def moves_of(self, message_id: str) -> list[Move]:
        """A message's moves: those that stop its sending, and its sending attempts up to the first missing one."""
        found = list((await get_many(self._moves, [move_id(message_id, to) for to in STOPS])).values())
        attempt = 1
        while True:
            tried = await get_many(self._moves, [move_id(message_id, t, attempt) for t in ATTEMPTS])
            if not tried:
                return [Move.from_doc(m) for m in found]
            found += tried.values()
            attempt += 1

    async def of_dossier(self, code: str) -> list[tuple[Listed, Body | None, list[Move]]]:
        """A dossier's messages with their bodies (if not purged) and moves, oldest first."""
        messages: dict[str, Listed] = {}
        moves: dict[str, dict[str, Move]] = {}
        for entry in await self._dossiers.entries(code):  # instants come back as text from the chain
            for m in entry.get("messages", ()):
                messages.setdefault(m["_id"], Listed.from_entry(m))
            for move in entry.get("moves", ()):
                moves.setdefault(move["message"], {}).setdefault(move["_id"], Move.from_doc(move))
        bodies = await get_many(self._bodies, messages)
        ordered = sorted(messages.values(), key=lambda m: m.created_at)
        return [(m, Body.from_doc(bodies[m.id]) if m.id in bodies else None, list(moves.get(m.id, {}).values()))
                for m in ordered]

    async def recipient_of(self, code: str) -> str | None:
        for _, body, _ in await self.of_dossier(code):
            if body and body.recipient:
                return body.recipient
        return None

    def number_hash(self, recipient: str) -> str:
        """A phone number (E.164) as the store keeps it: a keyed hash, never the number."""
        return hmac.new(self._number_key, recipient.encode(), hashlib.sha256).hexdigest()[:24]

    def _slot(self, recipient: str, day: str, n: int) -> str:
        return f"{day}|{self.number_hash(recipient)}|{n}"

    async def keep_citizens(self, standing: dict[str, dict[str, Any]], firsts: set[str]) -> None:
        """Where each dossier stands now (its latest status in a batch), for the SMS lookup; inserted for the
        dossiers of `firsts` (their first status record is in the batch), replaced for the others."""
        await written(self._citizens, [{"_id": code, **doc} for code, doc in standing.items()], firsts)

    async def citizen(self, code: str) -> dict[str, Any] | None:
        return await self._citizens.find_one({"_id": str(code)})

    async def take_slot(self, recipient: str, day: str, limit: int, at: datetime, start: int = 0) -> int | None:
        """The first free slot of the number's day from `start`, taken; None once `limit` are taken."""
        for n in range(start, limit):
            slot = self._slot(recipient, day, n)
            await self._forget_later("daily", [slot], at)  # noted before: never a slot the purge misses
            if await insert_new(self._daily, [{"_id": slot}]):
                return n
        return None

    async def take_slots(self, wanted: list[Wanted], limit: int, at: datetime) -> list[int | None]:
        """A slot for each (number, day, start): `take_slot`'s, with one purge note and one insert for
        those free where the caller expects (it gives one number's wants distinct starts); a slot
        another replica took meanwhile is looked for one by one from the next."""
        tried = {n: self._slot(r, d, s) for n, (r, d, s) in enumerate(wanted) if s < limit}
        if tried:
            await self._forget_later("daily", list(tried.values()), at)
        taken = await insert_new(self._daily, [{"_id": slot} for slot in tried.values()])
        later = {n: self.take_slot(r, d, limit, at, s + 1) for n, (r, d, s) in enumerate(wanted)
                 if n in tried and tried[n] not in taken}
        found = dict(zip(later, await asyncio.gather(*later.values()), strict=True))
        return [wanted[n][2] if n in tried and tried[n] in taken else found.get(n) for n in range(len(wanted))]

    async def give_back_slot(self, recipient: str, day: str, n: int) -> None:
        await self._daily.delete_one({"_id": self._slot(recipient, day, n)})

    async def _forget_later(self, collection: str, ids: list[str], at: datetime) -> None:
        day = as_utc(at).date().isoformat()
        chain = int(hashlib.sha256(ids[0].encode()).hexdigest()[:8], 16) % PURGE_CHAINS
        await self._append(self._purge, f"{day}|{chain}", {"collection": collection, "ids": ids, "at": at})

    async def _purge_chain(self, key: str, before: datetime, pending: set[str]) -> int:
        """Delete what a purge chain notes, written before `before`, except what is still to send."""
        deleted = 0
        for link in await self._purge.read(key):
            if datetime.fromisoformat(link["at"]) >= as_utc(before):
                continue
            target = self._bodies if link["collection"] == "bodies" else self._daily
            for i in link["ids"]:
                if i not in pending:
                    deleted += (await target.delete_one({"_id": i})).deleted_count
        return deleted

    async def purge(self, before: datetime, pending: set[str]) -> int:
        """Delete the numbers and texts (and daily slots) written before `before`, except those still to
        send, by key: day by day from where the last purge stopped, the last day up to `before`."""
        state = await self._state.find_one({"_id": "purge"})
        day = state["next_day"] if state else (as_utc(before) - timedelta(days=1)).date().isoformat()
        last = as_utc(before).date().isoformat()
        deleted = 0
        while day <= last:
            for key in (day, *(f"{day}|{n}" for n in range(PURGE_CHAINS))):  # the day's chains, the one of before too
                deleted += await self._purge_chain(key, before, pending)
            if day < last:
                day = (datetime.fromisoformat(day) + timedelta(days=1)).date().isoformat()
                await self._state.replace_one({"_id": "purge"}, {"next_day": day}, upsert=True)
            else:
                break
        return deleted


