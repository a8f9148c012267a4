"""The catalogue of scenarios: every "why" of opening, closing and TIME-WAIT, runnable.

``tcplab scenario list`` shows them; ``tcplab scenario run NAME`` runs one,
with the switches that remove the mechanism it demonstrates.  Each entry is
a :class:`~tcplab.scenarios.base.Scenario`; its texts (en, zh) are in
``tcplab/data/scenarios.json``.
"""

from __future__ import annotations

from tcplab.scenarios.base import DEFAULT, Result, Scenario, Switches, execute
from tcplab.scenarios.closing import SCENARIOS as _CLOSING
from tcplab.scenarios.connecting import SCENARIOS as _CONNECTING
from tcplab.scenarios.fastopen import SCENARIOS as _FASTOPEN
from tcplab.scenarios.opening import SCENARIOS as _OPENING
from tcplab.scenarios.outages import SCENARIOS as _OUTAGES
from tcplab.scenarios.queues import SCENARIOS as _QUEUES
from tcplab.scenarios.teardown import SCENARIOS as _TEARDOWN
from tcplab.scenarios.timewait import SCENARIOS as _TIMEWAIT
from tcplab.scenarios.tw_remedies import SCENARIOS as _TW_REMEDIES

CATALOGUE: dict[str, Scenario] = {s.name: s for s in [*_OPENING, *_CLOSING, *_TIMEWAIT,
                                                      *_CONNECTING, *_FASTOPEN, *_QUEUES, *_TEARDOWN,
                                                      *_TW_REMEDIES, *_OUTAGES]}


class UnknownScenario(KeyError):
    def __str__(self) -> str:
        return f"unknown scenario {self.args[0]!r}; known: {', '.join(CATALOGUE)}"


def names() -> list[str]:
    return list(CATALOGUE)


def get(name: str) -> Scenario:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise UnknownScenario(name) from None


def run(name: str, seed: int = 1, switches: Switches = DEFAULT) -> Result:
    return execute(get(name), seed, switches)


__all__ = ["CATALOGUE", "DEFAULT", "Result", "Scenario", "Switches", "UnknownScenario", "get",
           "names", "run"]
