"""The event loop a server process (``connector serve``, ``registry serve``) runs on.

By default (``auto``) that is uvloop, the libuv-based loop, where it is installed, which it is
with areamesh on Linux and macOS. A small transfer is one gRPC call that wakes the provider's
loop a dozen times (the call, its messages, the database thread's answers); on the standard
library's loop those wake-ups were about half of the provider's CPU time, and with uvloop the
same provider serves 40–50 % more 1-row transfers per second on the same machine (issue 18,
``bench/bench_small_transfers.py``, figures in ``bench/README.md``). ``asyncio`` is the
standard library's loop: for a platform without uvloop (Windows), or to rule the loop out
when chasing a fault. Nothing else changes with the loop: the same code runs on either, and
the test suite runs the servers on uvloop as they run in production.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from mesh.errors import InvalidRequest

log = logging.getLogger("areamesh.mesh.event_loop")
T = TypeVar("T")
EVENT_LOOPS = ("auto", "uvloop", "asyncio")


def check_event_loop(name: str, *, flag: str = "--event-loop") -> str:
    """``name`` when it is one of ``EVENT_LOOPS``; raises ``InvalidRequest`` otherwise."""
    if name not in EVENT_LOOPS:
        raise InvalidRequest(f"{flag} must be one of {', '.join(EVENT_LOOPS)}, got {name!r}",
                             message_ja=f"{flag} には {', '.join(EVENT_LOOPS)} のいずれかを"
                                        "指定してください")
    return name


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the loop ``name`` asks for (None: the standard library's). ``auto``
    falls back to the standard loop when uvloop is not installed; ``uvloop`` then refuses."""
    check_event_loop(name)
    if name == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if name == "uvloop":
            raise InvalidRequest("--event-loop uvloop: uvloop is not installed "
                                 "(pip install uvloop; it does not exist for Windows)",
                                 message_ja="uvloop がインストールされていません") from None
        return None
    return uvloop.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: which loop runs now (for the ready line and the log)."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run_server(main: Coroutine[Any, Any, T], event_loop: str = "auto") -> T:
    """``asyncio.run(main)`` on the loop ``event_loop`` names (see the module docstring)."""
    try:
        factory = loop_factory(event_loop)
    except BaseException:
        main.close()   # never awaited: closed, so Python does not warn about it
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        log.debug("event loop: %s", loop_name(runner.get_loop()))
        return runner.run(main)
