"""bot.answers: work after a first answer waits for the answers still owed, up to a limit."""

from __future__ import annotations

import asyncio

from bot.answers import AnswersFirst
from bot.metrics import Metrics


async def settle() -> None:
    """Let every ready task run until it waits on something."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_nothing_owed_means_no_wait() -> None:
    answers = AnswersFirst()
    await asyncio.wait_for(answers.after_answers(), 1)


async def test_work_waits_until_the_last_owed_answer_is_sent() -> None:
    metrics = Metrics()
    answers = AnswersFirst(metrics, max_hold=60)
    with answers.unanswered_interaction():
        with answers.unanswered_interaction():
            work = asyncio.create_task(answers.after_answers())
            await settle()
            assert not work.done()
            assert metrics.registry.get_sample_value("kontext_work_held_for_answers") == 1
        await settle()
        assert not work.done()
    await asyncio.wait_for(work, 1)
    assert answers.unanswered == 0
    assert metrics.registry.get_sample_value("kontext_work_held_for_answers") == 0


async def test_work_goes_on_after_the_longest_hold() -> None:
    answers = AnswersFirst(max_hold=0.01)
    with answers.unanswered_interaction():
        await asyncio.wait_for(answers.after_answers(), 5)
        assert answers.unanswered == 1


async def test_answers_are_sent_a_few_at_a_time() -> None:
    answers = AnswersFirst(in_flight=2)
    sending = 0
    most = 0
    release = asyncio.Event()

    async def answer() -> None:
        nonlocal sending, most
        async with answers.sending():
            sending += 1
            most = max(most, sending)
            await release.wait()
            sending -= 1

    tasks = [asyncio.create_task(answer()) for _ in range(5)]
    await settle()
    assert sending == 2
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert most == 2


async def test_an_answer_waits_for_a_place_only_so_long() -> None:
    """Discord answering slowly: an answer past its wait for a place goes out without one."""
    answers = AnswersFirst(in_flight=1, max_place_wait=0.01)
    release = asyncio.Event()
    second_sent = asyncio.Event()

    async def slow() -> None:
        async with answers.sending():
            await release.wait()

    async def second() -> None:
        async with answers.sending():
            second_sent.set()

    first = asyncio.create_task(slow())
    await settle()
    await asyncio.wait_for(second(), 5)
    assert second_sent.is_set() and not first.done()
    release.set()
    await first


async def test_held_work_goes_on_in_the_order_it_asked() -> None:
    """Work that asks once the answers are out, while earlier work is still being released,
    goes after that work, not before it."""
    answers = AnswersFirst(max_hold=60)
    order: list[int] = []

    async def work(number: int) -> None:
        await answers.after_answers()
        order.append(number)

    with answers.unanswered_interaction():
        held = [asyncio.create_task(work(n)) for n in range(3)]
        await settle()
    last = asyncio.create_task(work(3))
    await asyncio.wait_for(asyncio.gather(*held, last), 5)
    assert order == [0, 1, 2, 3]
