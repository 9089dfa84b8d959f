"""CancelToken: kills registered evaluations on cancel and, from the watchdog thread, at the deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from imgproxy_py.cancel import CancelToken
from imgproxy_py.errors import ClientClosedError, RequestTimeoutError


def test_cancel_kills_what_is_being_evaluated() -> None:
    token = CancelToken()
    killed: list[str] = []
    with token.watching(lambda: killed.append("a")):
        assert killed == []
        token.cancel()
        assert killed == ["a"]
    assert isinstance(token.error(), ClientClosedError)
    with token.watching(lambda: killed.append("late")):  # registered after the stop: killed at once
        assert killed == ["a", "late"]


def test_finished_evaluations_are_not_killed() -> None:
    token = CancelToken()
    killed: list[str] = []
    with token.watching(lambda: killed.append("done")):
        pass
    token.cancel()
    assert killed == []


def test_the_watchdog_kills_at_the_deadline_without_an_event_loop() -> None:
    token = CancelToken(deadline=time.monotonic() + 0.2)
    fired = threading.Event()
    started = time.monotonic()
    with token.watching(fired.set):
        assert fired.wait(5)
    assert 0.15 <= time.monotonic() - started < 2
    assert token.should_stop() and isinstance(token.error(), RequestTimeoutError)


def test_many_deadlines_fire_in_order() -> None:
    now = time.monotonic()
    fired: list[int] = []
    done = threading.Event()
    tokens = [CancelToken(deadline=now + 0.3 - i * 0.1) for i in range(3)]

    def killer(i: int) -> Callable[[], None]:
        def kill() -> None:
            fired.append(i)
            if len(fired) == 3:
                done.set()

        return kill

    contexts = [t.watching(killer(i)) for i, t in enumerate(tokens)]
    for ctx in contexts:
        ctx.__enter__()
    try:
        assert done.wait(5)
    finally:
        for ctx in contexts:
            ctx.__exit__(None, None, None)
    assert fired == [2, 1, 0]


def test_an_earlier_deadline_wakes_the_watchdog_waiting_for_a_later_one() -> None:
    # The watchdog sleeps until its earliest deadline and is woken only for an earlier one
    # (not for every token): a near deadline added behind a far one must still fire on time.
    far = CancelToken(deadline=time.monotonic() + 60)
    near = CancelToken(deadline=time.monotonic() + 0.2)
    fired = threading.Event()
    started = time.monotonic()
    with far.watching(lambda: None):
        time.sleep(0.05)  # the watchdog is asleep on the far deadline now
        with near.watching(fired.set):
            assert fired.wait(5)
    assert time.monotonic() - started < 2
    assert not far.should_stop()
