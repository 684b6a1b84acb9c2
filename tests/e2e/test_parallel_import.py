"""An investigator with a big capture uses every core: `import --jobs 2` shards the flows over
two worker processes and must find exactly what a single-process import finds."""
from __future__ import annotations

from corpus import PCAPS
from sessiontap_cli import CLI


def test_parallel_import_finds_the_same_sessions(tmp_path):
    caps = [str(PCAPS / "telnet" / "t4_two_concurrent_sessions.pcap"),
            str(PCAPS / "telnet" / "t2_failed_then_success.pcap"),
            str(PCAPS / "adversarial" / "a16_missing_segment.pcap"),
            str(PCAPS / "ssh" / "a01_shell_curve25519_aes128ctr.pcap")]
    keys = ["--keys", str(PCAPS / "ssh" / "a01_shell_curve25519_aes128ctr.keylog")]
    single, parallel = CLI(tmp_path / "one"), CLI(tmp_path / "two")
    single("import", "-q", *caps, *keys)
    parallel("import", "-q", "--jobs", "2", *caps, *keys)

    def view(cli):
        out = []
        for s in cli.json_lines("sessions", "--json"):
            d = cli.json("show", s["id"], "--json")
            out.append((s["id"], s["user"], s["auth"], s["status"], s["decrypted"], sorted(s["tags"]),
                        [c["text"] for c in d["commands"]], [(g["direction"], g["nbytes"]) for g in d["gaps"]],
                        sorted(s["recordings"])))
        return out

    one = view(single)
    assert len(one) == 5
    assert view(parallel) == one
    # and the recordings open
    sid = one[0][0]
    assert parallel("export", sid, "--format", "asciicast", "-o", "-").stdout.startswith(b'{"version": 2')
