"""One direction of TCP, segment by segment -> what the reassembler hands on."""
from sensor.reassembly import REORDER_WINDOW, HalfStream, seq_diff


def stream(isn=1000):
    out: list = []
    h = HalfStream(out)
    h.syn(isn)
    return h, out


def data(out):
    return b"".join(p[1] for p in out if p[0] == "data")


def test_in_order_segments_are_delivered_as_they_come():
    h, out = stream()
    h.segment(1001, b"login: ", 1.0)
    h.segment(1008, b"root\r\n", 1.1)
    assert out == [("data", b"login: ", 1.0), ("data", b"root\r\n", 1.1)]


def test_reordered_segment_waits_for_the_hole_and_is_delivered_in_sequence_order():
    h, out = stream()
    h.segment(1001, b"firs", 1.0)
    h.segment(1006, b"t", 1.1)         # arrives before the "s"... no: before byte 1005
    assert data(out) == b"firs"
    h.segment(1005, b"X", 1.2)
    assert data(out) == b"firsXt"
    assert [p[0] for p in out] == ["data", "data", "data"]


def test_exact_duplicate_retransmission_is_dropped_silently():
    h, out = stream()
    h.segment(1001, b"st-t1-bs-ok\r\n", 1.0)
    h.segment(1001, b"st-t1-bs-ok\r\n", 1.2)
    assert data(out) == b"st-t1-bs-ok\r\n"
    assert all(p[0] == "data" for p in out)


def test_conflicting_retransmission_keeps_first_copy_and_reports_it():
    h, out = stream()
    h.segment(1001, b"copy run start\r\n", 1.0)
    h.segment(1006, b"RUN", 1.5)
    assert data(out) == b"copy run start\r\n"
    conflicts = [p for p in out if p[0] == "conflict"]
    assert conflicts == [("conflict", 5, 3, 1.5)]


def test_overlap_with_new_tail_delivers_only_the_new_bytes():
    h, out = stream()
    h.segment(1001, b"abc", 1.0)
    h.segment(1002, b"bcdef", 1.1)
    assert data(out) == b"abcdef"


def test_a_hole_nobody_fills_becomes_a_gap_of_exact_size_after_the_reorder_window():
    h, out = stream()
    h.segment(1001, b"aaaa", 1.0)
    h.segment(1060, b"zz", 1.1)        # 55 bytes never captured
    h.tick(1.1 + REORDER_WINDOW / 2)
    assert ("gap", 55, 1.1 + REORDER_WINDOW / 2) not in out
    h.tick(1.1 + REORDER_WINDOW)
    assert ("gap", 55, 1.1 + REORDER_WINDOW) in out
    assert data(out) == b"aaaazz"
    h.segment(1062, b"!", 3.0)         # decoding goes on after the gap
    assert data(out) == b"aaaazz!"


def test_sequence_numbers_wrap_around():
    h, out = stream(isn=0xFFFFFFFD)
    h.segment(0xFFFFFFFE, b"ab", 1.0)
    h.segment(0x00000000, b"cd", 1.1)
    assert data(out) == b"abcd"
    assert seq_diff(1, 0xFFFFFFFF) == 2


def test_pickup_without_syn_starts_at_first_segment_seen():
    out: list = []
    h = HalfStream(out)
    h.segment(555, b"$ ", 1.0)
    h.segment(557, b"id\r\n", 1.1)
    assert data(out) == b"$ id\r\n"


def test_fin_marks_the_direction_done_only_when_all_bytes_arrived():
    h, out = stream()
    h.segment(1004, b"", 2.0, fin=True)   # FIN seen before the data it follows
    assert not h.done
    h.segment(1001, b"bye", 2.1)
    assert h.done
