"""shared/group_commit.py: calls that come while a run is under way are served together by the next run."""

import asyncio

import pytest

from shared.group_commit import GroupCommit


class Doubling:
    """A run that doubles each item after a round trip, and remembers what each run was given."""

    def __init__(self, failing: set[int] = frozenset()):
        self.runs: list[list[int]] = []
        self.failing = failing

    async def __call__(self, items: list[int]) -> list[int]:
        self.runs.append(items)
        await asyncio.sleep(0.01)
        if self.failing & set(items):
            raise ValueError(f"refused {sorted(self.failing & set(items))}")
        return [2 * item for item in items]


def test_a_call_alone_runs_at_once_and_calls_meanwhile_run_together_next():
    async def run():
        doubling = Doubling()
        double = GroupCommit(doubling)
        assert await double(1) == 2 and doubling.runs == [[1]]
        first = asyncio.create_task(double(2))
        await asyncio.sleep(0.001)  # its run is under way
        rest = await asyncio.gather(*(double(n) for n in range(3, 7)))
        assert await first == 4 and rest == [6, 8, 10, 12]
        assert doubling.runs == [[1], [2], [3, 4, 5, 6]]

    asyncio.run(run())


def test_a_failed_run_fails_each_of_its_calls_and_the_next_calls_run():
    async def run():
        double = GroupCommit(Doubling(failing={3}))
        answers = await asyncio.gather(*(double(n) for n in (2, 3, 4)), return_exceptions=True)
        assert all(isinstance(a, ValueError) and "refused [3]" in str(a) for a in answers)
        assert await double(5) == 10

    asyncio.run(run())


def test_a_caller_gone_leaves_the_others_their_answers():
    async def run():
        double = GroupCommit(Doubling())
        gone, stays = asyncio.create_task(double(1)), asyncio.create_task(double(2))
        await asyncio.sleep(0.001)
        gone.cancel()
        assert await stays == 4
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert await double(3) == 6

    asyncio.run(run())
