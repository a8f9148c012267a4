"""The 11 TCP states of RFC 9293 section 3.3.2, spelled as the RFC spells them."""

from __future__ import annotations

from enum import Enum
from typing import Final


class State(Enum):
    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"

    def __str__(self) -> str:
        return self.value

    @property
    def synchronized(self) -> bool:
        """ESTABLISHED and every later state (RFC 9293 3.5.2)."""
        return self in _SYNCHRONIZED


_SYNCHRONIZED: Final = frozenset({
    State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT, State.CLOSING,
    State.LAST_ACK, State.TIME_WAIT,
})

ALL_STATES = tuple(State)
