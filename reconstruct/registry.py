"""Which decoder handles which detected protocol.

Decoders are imported on first use so that a protocol whose optional dependencies are
missing (pyrdp for RDP) costs only its own sessions, which are kept with a clear status.
"""
from __future__ import annotations

import importlib
from typing import Any

from reconstruct.decoder import Decoder, KeyLookup, NoKeys

DECODERS = {
    "telnet": ("reconstruct.telnet", "TelnetDecoder"),
    "ssh": ("reconstruct.ssh", "SSHDecoder"),
    "rdp": ("reconstruct.rdp", "RDPDecoder"),
}


class DecoderUnavailable(Exception):
    pass


def make_decoder(protocol: str, keys: KeyLookup | None = None, **options: Any) -> Decoder:
    try:
        module_name, cls_name = DECODERS[protocol]
    except KeyError:
        raise DecoderUnavailable(f"no decoder for protocol {protocol!r}") from None
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as e:
        raise DecoderUnavailable(f"the {protocol} decoder cannot be loaded ({e})") from None
    return cls(keys=keys or NoKeys(), **options)
