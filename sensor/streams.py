"""What the sensor hands to reconstruction: ordered bytes per connection and direction.

These are the only objects that cross from ``sensor/`` to ``reconstruct/``. ``flow_id`` is
unique within one run of the sensor; ``direction`` is ``"c2s"`` or ``"s2c"`` (the client is
the side that sent the SYN, or, for a connection picked up mid-stream, the side whose port
is the higher/ephemeral one).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

Direction = Literal["c2s", "s2c"]


@dataclass(frozen=True, slots=True)
class StreamOpened:
    flow_id: int
    ts: float
    protocol: str              # detected by content: "telnet" | "ssh" | "rdp"
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    picked_up: bool            # no SYN seen: the capture began mid-connection


@dataclass(frozen=True, slots=True)
class StreamData:
    flow_id: int
    direction: Direction
    data: bytes
    ts: float


@dataclass(frozen=True, slots=True)
class StreamGap:
    flow_id: int
    direction: Direction
    nbytes: int
    ts: float


@dataclass(frozen=True, slots=True)
class StreamConflict:
    """A retransmission carried different bytes than the copy already delivered (first copy wins)."""
    flow_id: int
    direction: Direction
    offset: int
    nbytes: int
    ts: float


@dataclass(frozen=True, slots=True)
class StreamClosed:
    flow_id: int
    ts: float
    reason: str                # "fin" | "rst" | "idle" | "capture-end" | "evicted"
    c2s_bytes: int = 0
    s2c_bytes: int = 0


StreamEvent = Union[StreamOpened, StreamData, StreamGap, StreamConflict, StreamClosed]
