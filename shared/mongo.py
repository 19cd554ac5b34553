"""MongoDB conventions shared by the services' stores (FerretDB 1.24 and MongoDB alike).

Every read is by `_id`: exact, or `{_id: {$in: [...]}}` of up to 1,000 strings, the only filters our
build of FerretDB's SQLite backend answers from the `_id` index (deploy/local/ferretdb/, README
"Decisions"). Any other filter reads the whole collection there. Updates are read-modify-write without a
transaction on FerretDB, so two writers of one document can lose one's change: what several
processes write goes into insert-only documents, whose unique `_id` decides between them.
"""

import asyncio
from collections.abc import AsyncIterator, Container, Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from pymongo import ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared.group_commit import GroupCommit

DUPLICATE_KEY = 11000
GET_MANY = 1000  # keys a query: at most what our FerretDB reads by its `_id` index at once (id-in.patch)


async def insert_new(collection: AsyncCollection, docs: list[dict[str, Any]]) -> set[Any]:
    """Insert documents whose `_id` may already be there (written by an earlier attempt or another
    replica): those are left as they are. Any other error is raised. Returns the `_id`s inserted now."""
    return {doc["_id"] for doc, new in zip(docs, await inserted(collection, docs), strict=True) if new}


async def inserted(collection: AsyncCollection, docs: list[dict[str, Any]]) -> list[bool]:
    """`insert_new` told document by document: whether each was inserted now (of two with one `_id` in
    `docs`, only the first)."""
    if not docs:
        return []
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details["writeErrors"]
        if any(e["code"] != DUPLICATE_KEY for e in errors):
            raise
        there = {e["index"] for e in errors}
        return [n not in there for n in range(len(docs))]
    return [True] * len(docs)


async def delete_all(collection: AsyncCollection, ids: list[str]) -> None:
    """Delete these documents (those that exist) by their `_id`s, one statement per GET_MANY of them
    (`{"_id": {"$in": [...]}}`, from the `_id` index as `get_many`'s): our FerretDB ran a statement per
    key as a query and a transaction of its own, three times its CPU a document deleted (by hand)."""
    keys = [str(k) for k in dict.fromkeys(ids)]  # plain values, never operators nor patterns
    for start in range(0, len(keys), GET_MANY):
        await collection.delete_many({"_id": {"$in": keys[start : start + GET_MANY]}})


async def get_many(collection: AsyncCollection, ids: Iterable[str]) -> dict[str, dict]:
    """The documents of these `_id`s that exist, read by their keys in one query per GET_MANY of them
    (`{"_id": {"$in": [...]}}`: MongoDB's `_id` index, and our FerretDB's since its id-in patch,
    deploy/local/ferretdb/id-in.patch; a key read each cost a round trip before). The limit closes the
    cursor with its first batch: without it, a getMore followed to learn that it was over (twice the
    client's CPU for a read of one key)."""
    keys = [str(k) for k in dict.fromkeys(ids)]  # plain values, never operators
    found: dict[str, dict] = {}
    for start in range(0, len(keys), GET_MANY):
        chunk = keys[start : start + GET_MANY]
        async for doc in collection.find({"_id": {"$in": chunk}}, batch_size=len(chunk), limit=len(chunk)):
            found[doc["_id"]] = doc
    return {key: found[key] for key in keys if key in found}  # in the order asked


class KeyReads:
    """Reads of one collection's documents by `_id`, those asked for while one is under way made together
    in one query (`get_many`, a group commit): alone, a read goes at once; under load, one round trip
    serves many callers. Callers asking for one `_id` at once share its document: none may change it."""

    def __init__(self, collection: AsyncCollection):
        self._collection = collection
        self._together: GroupCommit[str, dict | None] = GroupCommit(self._read)

    async def __call__(self, key: str) -> dict | None:
        return await self._together(str(key))

    async def _read(self, keys: list[str]) -> list[dict | None]:
        found = await get_many(self._collection, keys)
        return [found.get(key) for key in keys]


async def read_ahead(cursor: AsyncCursor, batch: int) -> AsyncIterator[dict[str, Any]]:
    """A cursor's documents, `batch` at a time, the next batch asked for before this one is handed out:
    the database makes it ready while the caller works on this one (a start reading a store of blobs)."""
    ahead = asyncio.ensure_future(cursor.to_list(batch))
    try:
        while docs := await ahead:
            ahead = asyncio.ensure_future(cursor.to_list(batch))
            await asyncio.sleep(0)  # the next batch's request is sent before the caller's work
            for doc in docs:
                yield doc
    finally:
        ahead.cancel()


def pack(doc: Any) -> bytes:
    """A document as one JSON blob (instants as RFC 3339 text): FerretDB reads a document field by
    field, so a blob of what only this code reads comes back several times faster."""
    return orjson.dumps(doc, option=orjson.OPT_NAIVE_UTC)


def unpack(blob: bytes) -> Any:
    return orjson.loads(blob)


async def replace_all(collection: AsyncCollection, docs: list[dict[str, Any]]) -> None:
    """Replace (or insert) documents by `_id`, in one command. (FerretDB 1.24 as released stops every
    write when a command has ~100 such statements: our build fixes it, deploy/local/ferretdb/.)"""
    if docs:
        await collection.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs], ordered=False)


async def written(collection: AsyncCollection, docs: list[dict[str, Any]], firsts: Container[Any]) -> None:
    """Each document replaced by its `_id`, or inserted if its `_id` is in `firsts` (the caller knows it new: a
    dossier's first link, its first status record). FerretDB inserts a batch's documents in one transaction
    (when none is there: else one by one), and runs each replacement as a query and a transaction of its own:
    ~13 against ~115 µs of its CPU a small document (by hand), a quarter of the time for processing's summaries
    (bench-e2e's baselines). One that is there after all (written by another replica since, or by an earlier
    attempt) is replaced, as any other."""
    inserted = await insert_new(collection, [doc for doc in docs if doc["_id"] in firsts])
    await replace_all(collection, [doc for doc in docs if doc["_id"] not in inserted])


def as_utc(t: datetime) -> datetime:
    """An instant read back: BSON dates come back naive, in UTC."""
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def link_id(key: str, n: int) -> str:
    return key if n == 0 else f"{key}#{n}"


class Chain:
    """Append-only lists, one per key, as insert-only links `key`, `key#1`, `key#2`, ...

    Inserting link n is a claim: of two writers, exactly one gets it. A reader follows the links
    from a number it knows to the first missing one. With a `summaries` collection, `entries` keeps
    there, per key, what the links read so far hold, so that the next read starts after them (and
    `extend` with the link it appends). Each link holds its document as a blob (`pack`).
    """

    def __init__(self, collection: AsyncCollection, summaries: AsyncCollection | None = None):
        self.collection = collection
        self._summaries = summaries

    async def read(self, key: str, start: int = 0, window: int = 1) -> list[dict[str, Any]]:
        """The links from number `start` to the first missing one, in order: `window` key reads at
        once at first (from a summary, a chain seldom grew), then more while it goes on."""
        links: list[dict[str, Any]] = []
        n = start
        while True:
            ids = [link_id(key, n + i) for i in range(window)]
            found = await get_many(self.collection, ids)
            for lid in ids:
                if lid not in found:
                    return links
                links.append(unpack(found[lid]["blob"]))
            n, window = n + window, min(2 * window, 8)

    @staticmethod
    def link(key: str, n: int, doc: dict[str, Any]) -> dict[str, Any]:
        """Link n of a key's chain, holding `doc`, as stored."""
        return {"_id": link_id(key, n), "blob": pack(doc)}

    async def claim(self, key: str, n: int, doc: dict[str, Any]) -> bool:
        """Insert `doc` as link n; False if that link is already there."""
        try:
            await self.collection.insert_one(self.link(key, n, doc))
        except DuplicateKeyError:
            return False
        return True

    async def blank(self, key: str, field: str, values: Container[Any], links: list[dict[str, Any]] | None = None) -> None:
        """Set `field` to None in the links of `key`'s chain whose `field` is one of `values` (the chain stays
        unbroken: a reader follows it past them). `links`: the chain as just read, else it is read."""
        for n, link in enumerate(await self.read(key) if links is None else links):
            if link[field] in values:
                await self.collection.replace_one({"_id": link_id(key, n)}, self.link(key, n, link | {field: None}))

    async def append(self, key: str, doc: dict[str, Any], hint: int = 0) -> int:
        """Insert `doc` as the first free link from number `hint` on; returns its number."""
        n = hint
        while not await self.claim(key, n, doc):
            n += 1 + len(await self.read(key, n + 1))  # to the end of what others wrote
        return n

    async def entries(self, key: str) -> list[dict[str, Any]]:
        """Every link's document, oldest first: the summary, then the links after it, which then join
        the summary (a plain replace: a summary older than another's costs the next reader a few more
        links, nothing else). Readers racing to write a key's first summary: one upsert inserts it, the
        others fail on its `_id` (FerretDB and MongoDB alike) and are dropped, as an older summary is."""
        assert self._summaries is not None
        summary = await self._summaries.find_one({"_id": str(key)})
        start, known = (summary["upto"], unpack(summary["blob"])) if summary else (0, [])
        later = await self.read(key, start, window=1 if start else 4)
        if later:
            await self._summarise(key, known + later)
        return known + later

    async def extend(self, key: str, doc: dict[str, Any], entries: list[dict[str, Any]]) -> None:
        """Append `doc` after `entries` (the whole chain's from link 0, as `entries` returned them: a part would make a
        summary that hides links), and summarise the chain with it: its next reader reads no link. If others appended
        meanwhile, `doc` goes after theirs, and that reader summarises."""
        if await self.append(key, doc, hint=len(entries)) == len(entries):
            await self._summarise(key, [*entries, doc])

    async def _summarise(self, key: str, entries: list[dict[str, Any]]) -> None:
        assert self._summaries is not None
        try:
            await self._summaries.replace_one({"_id": str(key)}, {"upto": len(entries), "blob": pack(entries)},
                                              upsert=True)
        except DuplicateKeyError:
            pass


async def archived_entries(chain: Chain, keys: Iterable[str], field: str) -> AsyncIterator[Any]:
    """Each entry listed under `field` in the links of these keys' chains (an archive's), key by key."""
    for key in keys:
        for link in await chain.read(key, window=2):
            for entry in link[field]:
                yield entry
