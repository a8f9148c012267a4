"""asyncio in virtual time: an event loop whose clock is the simulator's.

:class:`SimEventLoop` is a ``SelectorEventLoop`` whose ``time()`` is
``network.now`` and whose selector, instead of waiting for file descriptors,
runs the network until an engine event schedules a callback or the loop's
next timer is due.  So ``await asyncio.sleep(60)`` costs microseconds, and a
program that waits for something that can never happen fails with
:class:`~tcplab.sim.network.SimulationStuck` instead of hanging.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from tcplab.sim.network import Network, SimulationStuck

T = TypeVar("T")


class _SimSelector(selectors.BaseSelector):
    def __init__(self, net: Network) -> None:
        self.net = net
        self.loop: SimEventLoop | None = None
        self._map: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = selectors.SelectorKey(fileobj, fileobj if isinstance(fileobj, int)
                                    else fileobj.fileno(), events, data)
        self._map[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._map.pop(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._map

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        net = self.net
        loop = self.loop
        assert loop is not None
        net.flush()
        if timeout is not None and timeout <= 0:
            return []
        deadline = None if timeout is None else net.now + timeout
        while not loop.has_ready():
            if not net.step(deadline):
                if deadline is None:
                    raise SimulationStuck("the asyncio program waits for something that never "
                                          "happens: the simulated network is idle")
                return []
        return []

    def close(self) -> None:
        self._map.clear()


class SimEventLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop running in the network's virtual time."""

    def __init__(self, net: Network) -> None:
        sel = _SimSelector(net)
        super().__init__(selector=sel)
        sel.loop = self
        self.net = net
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self.net.now

    def has_ready(self) -> bool:
        return bool(getattr(self, "_ready"))  # noqa: B009 - asyncio keeps no public accessor

    def kick(self) -> None:
        self.net.flush()


def run_async(net: Network, coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion in the network's virtual time."""
    loop = SimEventLoop(net)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
