"""RDP reconstruction: passive decryption (TLS key log, server RSA key, Standard RDP Security)
and PyRDP-based decoding of who did what, what was typed, copied and shown.

Entry point: ``RDPDecoder(keys, server_keys=...)`` (a ``reconstruct.decoder.Decoder``)."""
from reconstruct.rdp.decoder import RDPDecoder
from reconstruct.rdp.keylog import KeyLogLookup, parse_keylog
from reconstruct.rdp.tls import load_rsa_private_key

__all__ = ["RDPDecoder", "KeyLogLookup", "parse_keylog", "load_rsa_private_key"]
