"""Frames at the edges of a capture file are read like any other."""
from corpus import PCAPS
from sensor.pipeline import SensorRun
from sensor.streams import StreamClosed


def test_the_last_frame_of_the_file_is_decoded_whole():
    # rdp-tls13 ends with the server's RST as the very last 54-byte frame: its TCP flags sit in
    # the file's final bytes, and the session must end with "rst", not "capture-end"
    closed = [e for e in SensorRun(str(PCAPS / "rdp" / "rdp-tls13.pcap")) if isinstance(e, StreamClosed)]
    assert [c.reason for c in closed] == ["rst"]


def test_sessions_that_end_cleanly_are_closed_by_fin_or_rst_in_every_good_capture():
    for proto in ("telnet", "rdp"):
        for cap in sorted((PCAPS / proto).glob("*.pcap")):
            if "bad" in cap.name or cap.name.startswith(("t5a", "t6")):
                continue
            reasons = {e.reason for e in SensorRun(str(cap)) if isinstance(e, StreamClosed)}
            assert reasons <= {"fin", "rst"}, (cap.name, reasons)
