"""A group commit: calls that come while earlier ones are being done wait, then are done together in one
`run` of them all, and each call answers with its own result. Alone, a call runs at once; under load, one
database round trip serves many requests (notifications' delivery reports, intake's dossier keys)."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """`run` takes the items waiting and gives one result for each, in their order. A failed run fails
    each of its calls with its exception; the calls waiting behind it run next."""

    def __init__(self, run: Callable[[list[Item]], Awaitable[list[Result]]]):
        self._run = run
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._running: asyncio.Task[None] | None = None

    async def __call__(self, item: Item) -> Result:
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                results = await self._run([item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - each call answers with it
                for _, done in batch:
                    if not done.done():  # its caller may be gone
                        done.set_exception(exc)
                continue
            except BaseException:  # the drain cancelled (a shutdown): so is every call it would have served
                for _, done in batch + self._waiting:
                    done.cancel()
                raise
            for (_, done), result in zip(batch, results, strict=True):
                if not done.done():
                    done.set_result(result)
