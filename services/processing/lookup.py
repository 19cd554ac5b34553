"""The citizens' lookup (tra cứu hồ sơ, docs/contract.md §8): a dossier code and a second factor the
citizen has, answered with only what the citizen needs (never a name nor a phone).

A wrong factor and an unknown code give the same answer after the same work (the factor is compared,
in constant time, with a stand-in when the dossier is unknown). Guesses of the 4 digits are limited per
code and per (client, code) by counters every replica shares, in the database, and each is counted
before the dossier is read: a burst of concurrent guesses from many addresses is refused past the
limit, not evaluated (docs/security.md). A valid token (the receipt's QR code) is checked without them,
so nobody's failures lock a citizen out of it. Attempts per client a minute are bounded in memory
too, per replica: against floods, not guessing.
"""

import asyncio
import contextlib
import hmac
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from pymongo.asynchronous.collection import AsyncCollection
from starlette.requests import Request

from shared.calendar import WorkingCalendar
from shared.facts import open_state
from shared.http import Network, in_networks, ip_address_of
from shared.labels import OPEN_STATES, STATES, STEPS
from shared.lookup import PHONE4, TOKEN, lookup_token
from shared.group_commit import GroupCommit
from shared.mongo import delete_all, insert_new, inserted
from shared.ratelimit import Windows

log = structlog.get_logger()

# Right guesses' slots are given back together, this long after the first: a client looking up one dossier
# after another gave each back alone, a delete of FerretDB's beside each next guess's insert (bench-reads).
GIVE_BACK_AFTER = 0.05


class LookupRefused(Exception):
    """Too many attempts: the answer is 429, with the seconds to wait."""

    def __init__(self, retry_after: int):
        super().__init__(f"too many attempts, retry after {retry_after} s")
        self.retry_after = retry_after


Window = tuple[str, int, float]  # a key's current window ("key|window"), its limit, when it ends


class Slots:
    """Counters every replica shares: at most `limit` insert-only documents per key and fixed window.
    Claiming one is an insert whose unique `_id` decides between concurrent claimers (FerretDB's updates
    are not atomic, shared/mongo.py); a full window is seen by reading its last slot's key. A window this
    replica saw full is refused from memory for `remember_full` seconds (a flood of guesses costs the
    database one read a minute): slots are only given back by right guesses, so a full window seldom
    frees one; when it does (a citizen's own lookups side by side held its slots), it is seen again."""

    def __init__(self, collection: AsyncCollection, clock: Callable[[], float] = time.time,
                 remembered: int = 100_000, remember_full: float = 60.0):
        self._collection = collection
        self._clock = clock
        self._full: dict[str, float] = {}  # "key|window" → until when it is refused from memory
        self._remembered = remembered
        self._full_for = remember_full
        self._claim_firsts = GroupCommit(self._insert_firsts)  # many guesses at once: one insert

    def window(self, key: str, seconds: int) -> tuple[str, float]:
        """The current window of `key` ("key|window") and when it ends."""
        window = int(self._clock() // seconds)
        return f"{key}|{window}", float((window + 1) * seconds)

    def refused(self, base: str, ends: float) -> LookupRefused | None:
        """LookupRefused when this replica saw the window full lately, without the database."""
        return self._refusal(ends) if self._full.get(base, 0.0) > self._clock() else None

    def _refusal(self, ends: float) -> LookupRefused:
        return LookupRefused(max(1, int(ends - self._clock()) + 1))

    async def claim(self, claims: list[Window]) -> list[str | LookupRefused]:
        """A slot of each window, or LookupRefused until the window ends. The first slots of all windows
        are tried in one insert (a key seldom has failures); past one, a full window costs one read, not
        `limit` inserts."""
        firsts = await self._claim_firsts([self._slot(f"{base}|0", ends) for base, limit, ends in claims if limit > 0])
        return list(await asyncio.gather(*(self._next(base, limit, ends, f"{base}|0" in firsts)
                                           for base, limit, ends in claims)))

    async def _insert_firsts(self, calls: list[list[dict[str, Any]]]) -> list[set[str]]:
        """The first slots of guesses that came together, in one insert: each guess's that it took (of two
        guesses for one slot, the first)."""
        taken = iter(await inserted(self._collection, [slot for slots in calls for slot in slots]))
        return [{slot["_id"] for slot in slots if next(taken)} for slots in calls]

    async def _next(self, base: str, limit: int, ends: float, first: bool) -> str | LookupRefused:
        if first:
            return f"{base}|0"
        if limit > 1 and await self._collection.find_one({"_id": f"{base}|{limit - 1}"}) is None:
            for n in range(1, limit):
                if await insert_new(self._collection, [self._slot(f"{base}|{n}", ends)]):
                    return f"{base}|{n}"
        self._remember_full(base, ends)
        return self._refusal(ends)

    @staticmethod
    def _slot(slot: str, expires: float) -> dict[str, Any]:
        return {"_id": slot, "expires": datetime.fromtimestamp(expires, UTC)}

    def _remember_full(self, base: str, ends: float) -> None:
        if len(self._full) >= self._remembered:  # bounded: forget the windows over, else keep asking the database
            now = self._clock()
            self._full = {k: e for k, e in self._full.items() if e > now}
            if len(self._full) >= self._remembered:
                return
        self._full[base] = min(ends, self._clock() + self._full_for)

    async def release(self, slots: list[str]) -> None:
        await delete_all(self._collection, slots)

    async def purge(self) -> None:
        """Forget the windows that are over (a small collection: at most the limits' slots an hour)."""
        now = self._clock()
        self._full = {k: e for k, e in self._full.items() if e > now}
        await self._collection.delete_many({"expires": {"$lt": datetime.fromtimestamp(now, UTC)}})


class Attempts:
    """The lookup's limits: a client's attempts a minute (`check`, in memory), and the guesses of a
    code's 4 digits an hour, per code and per (client, code) (`windows` and `guess`, shared Slots)."""

    def __init__(self, slots: Slots, per_client_per_minute: int, failures_per_code_per_hour: int,
                 failures_per_client_code_per_hour: int, clock: Any = time.monotonic):
        self._clients = Windows(per_client_per_minute, 60.0, clock)
        self._slots = slots
        self._per_code = failures_per_code_per_hour
        self._per_client_code = failures_per_client_code_per_hour
        self._giving_back: list[str] = []  # right guesses' slots, given back after their answers
        self._giver: asyncio.Task | None = None
        self._at_once = asyncio.Event()  # the slots waiting are given back without waiting longer

    def check(self, client: str) -> None:
        """Count an attempt of `client`, before anything is awaited; refuse it over the client's limit."""
        wait = self._clients.wait(client)
        if wait is not None:
            raise LookupRefused(max(1, int(wait) + 1))
        self._clients.add(client)

    def windows(self, client: str, code: str, code_wide: bool = True) -> list[Window]:
        """The windows a guess counts in, before anything is awaited: LookupRefused at once for one
        this replica saw full."""
        keys = [(f"client|{client}|{code}", self._per_client_code)] + ([(f"code|{code}", self._per_code)]
                                                                        if code_wide else [])
        windows = []
        for key, limit in keys:
            base, ends = self._slots.window(key, 3600)
            if refused := self._slots.refused(base, ends):
                raise refused
            windows.append((base, limit, ends))
        return windows

    async def take(self, windows: list[Window]) -> list[str]:
        """Count a guess as a failure in each window before it is evaluated (the slots to give back if it
        was right), or LookupRefused over a limit."""
        if not windows:
            return []
        outcomes = await self._slots.claim(windows)
        claimed = [o for o in outcomes if isinstance(o, str)]
        if refused := next((o for o in outcomes if isinstance(o, LookupRefused)), None):
            await self.right(claimed)  # not counted: the guess is refused, not evaluated
            raise refused
        return claimed

    async def guess(self, client: str, code: str, code_wide: bool = True) -> list[str]:
        return await self.take(self.windows(client, code, code_wide))

    async def right(self, claimed: list[str]) -> None:
        """The guess was right (or not evaluated): it is not a failure."""
        await self._slots.release(claimed)

    def right_later(self, claimed: list[str]) -> None:
        """`right`, in the background: meanwhile the slots still count, the safe side. Those of the guesses
        that come within GIVE_BACK_AFTER of the first waiting go together, and those that come during a
        delete go in the next; but a window that would hold two of them (one client polling one dossier)
        is given back at once, so that a citizen's own right guesses never fill it."""
        waiting = {_window_of(slot) for slot in self._giving_back}
        if any(_window_of(slot) in waiting for slot in claimed):
            self._at_once.set()
        self._giving_back += claimed
        if self._giving_back and (self._giver is None or self._giver.done()):
            self._giver = asyncio.create_task(self._give_back())

    async def _give_back(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._at_once.wait(), GIVE_BACK_AFTER)
        self._at_once.clear()
        while self._giving_back:
            slots, self._giving_back = self._giving_back, []
            try:
                await self._slots.release(slots)
            except Exception as error:  # they stay counted until their window ends: the safe side
                log.warning("lookup slots not given back", slots=len(slots), error=type(error).__name__)

    async def settled(self) -> None:
        """Wait until the slots given back after answers are deleted (tests)."""
        while self._giver is not None and not self._giver.done():
            await self._giver

    async def close(self) -> None:
        """Give the slots waiting back now (at a stop, before the database is closed)."""
        self._at_once.set()
        await self.settled()


def _window_of(slot: str) -> str:
    """The window ("key|window") a slot ("key|window|n") is of."""
    return slot.rsplit("|", 1)[0]


def client_of(request: Request, trusted: list[Network]) -> str:
    """The caller's address: the peer's, or, when the peer is a trusted proxy, the nearest address in
    `X-Forwarded-For` that is not one (what the proxy itself appended); anything else a caller wrote
    there is ignored."""
    peer = request.client.host if request.client else "?"
    if not in_networks(peer, trusted):
        return peer
    for hop in reversed(request.headers.get("x-forwarded-for", "").split(",")):
        hop = hop.strip()
        if not in_networks(hop, trusted):
            return hop if ip_address_of(hop) else peer
    return peer


def factor_matches(code: str, phone4_given: str | None, token_given: str | None, phone4: str | None,
                   secret: str) -> bool:
    """Whether the citizen's factor is this dossier's; the same comparisons whatever the outcome."""
    if phone4_given is not None:
        return hmac.compare_digest(phone4_given.encode(), (phone4 or "\x00" * 4).encode())
    if token_given is not None:
        return hmac.compare_digest(token_given.encode(), lookup_token(secret, code).encode())
    return False


def well_formed_factor(phone4: str | None, token: str | None) -> bool:
    """Exactly one factor, in its shape: 4 ASCII digits, or a 16-letter token."""
    if (phone4 is None) == (token is None):
        return False
    return bool(PHONE4.match(phone4)) if phone4 is not None else bool(TOKEN.match(token or ""))


def citizen_view(view: dict[str, Any], now: datetime, calendar: WorkingCalendar) -> dict[str, Any]:
    """What a citizen sees of their dossier: state, appointment, steps, what is missing. No name, no phone."""
    due = datetime.fromisoformat(view["due_at"]) if view["due_at"] else None
    state_now = open_state(view["state"], due, now, calendar)
    return {
        "dossier_code": view["dossier_code"],
        "state": view["state"],
        "state_name": STATES[view["state"]],
        "open_state": state_now,
        "open_state_name": OPEN_STATES.get(state_now) if state_now else None,
        "received_at": view["received_at"],
        # The date told to the citizen holds while the dossier is being processed; a supplement or a
        # payment awaited suspends it (docs/domain.md §3).
        "appointment_at": view.get("appointment_at") if view["state"] == "processing" else None,
        "ended_at": view["ended_at"],
        "missing": view.get("missing") if view["state"] == "awaiting_supplement" else None,
        "steps": [{"type": s["type"], "name": STEPS.get(s["type"], s["type"]), "time": s["time"]}
                  for s in view["history"]],
    }
