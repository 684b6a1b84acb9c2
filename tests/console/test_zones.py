"""Zone scoping over IPv4 and IPv6 servers: the same t2 session captured on a 10.20/16 OT
cell (Ethernet), an IPv6 cell (2001:db8:20::/48) and loopback. The server addresses come
from tshark (the first SYN of each capture), not from our decoder."""
from __future__ import annotations

import subprocess

import pytest

from console_harness import ROOT, T2, Running, import_captures

CAPTURES = [ROOT / "pcaps" / "adversarial" / "a01_ethernet.pcap", ROOT / "pcaps" / "adversarial" / "a04_ipv6.pcap", T2]


def first_syn_server(tshark: str, cap) -> str:
    out = subprocess.run([tshark, "-r", str(cap), "-Y", "tcp.flags.syn==1 && tcp.flags.ack==0", "-c", "1",
                          "-T", "fields", "-e", "ip.dst", "-e", "ipv6.dst"], capture_output=True, check=True, timeout=60)
    return out.stdout.decode().split("\n")[0].strip()


@pytest.fixture(scope="module")
def three_cells(tmp_path_factory):
    home = tmp_path_factory.mktemp("zones") / "home"
    import_captures(home, *CAPTURES)
    r = Running(home)
    yield r
    r.close()


@pytest.fixture(scope="module")
def everyone(three_cells):
    c = three_cells.client()
    assert c.sign_in(three_cells.user("all-zones", "auditor")).status == 200
    return c


@pytest.mark.parametrize("cidrs, expect", [
    (["10.20.0.0/16"], {"a01_ethernet.pcap"}),
    (["10.20.0.23/32"], {"a01_ethernet.pcap"}),
    (["10.21.0.0/16"], set()),
    (["2001:db8:20::/48"], {"a04_ipv6.pcap"}),
    (["2001:db8:21::/48"], set()),
    (["127.0.0.0/8", "2001:db8::/32"], {"t2_failed_then_success.pcap", "a04_ipv6.pcap"}),
    (["0.0.0.0/0"], {"a01_ethernet.pcap", "t2_failed_then_success.pcap"}),
    ([], set()),
])
def test_an_auditor_sees_exactly_the_sessions_whose_server_is_in_their_zones(three_cells, everyone, tshark, cidrs,
                                                                             expect):
    servers = {cap.name: first_syn_server(tshark, cap) for cap in CAPTURES}
    assert servers["a01_ethernet.pcap"] == "10.20.0.23" and servers["a04_ipv6.pcap"] == "2001:db8:20::23"
    zone = f"z{abs(hash(tuple(cidrs))) % 10**6}"
    three_cells.accounts.store.set_zone(zone, cidrs)
    u = three_cells.user(f"aud-{zone}", "auditor", [zone])
    c = three_cells.client()
    assert c.sign_in(u).status == 200
    listed = c.call("GET", "/api/sessions").json()["sessions"]
    assert {s["source"] for s in listed} == expect
    assert {s["server_ip"] for s in listed} == {servers[name] for name in expect}
    hits = c.call("GET", "/api/search?q=fwupdate").json()["hits"]
    assert {h["server_ip"] for h in hits} == {servers[name] for name in expect}
    for s in everyone.call("GET", "/api/sessions").json()["sessions"]:
        status = c.call("GET", f"/api/sessions/{s['id']}").status
        assert status == (200 if s["source"] in expect else 404), s["source"]
