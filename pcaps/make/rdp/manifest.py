#!/usr/bin/env python3
"""Write pcaps/rdp/manifest.json: what each RDP capture must yield, from the scenario.

Everything here comes from gen.sh's session scripts and the parameters each capture was made
with (rdp-*.params.txt, params.txt), never from sessiontap's decoder. The keyboard-layout
captures take their typed line from the file the server really created (``created_files``,
listed by gen.sh from the test user's home).

usage: manifest.py [pcaps/rdp]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent.parent / "rdp"

# gen.sh: capture id -> (file stem, security, key file, importer option)
CAPTURES = {
    "stdsec": ("rdp-stdsec", "Standard RDP Security (RC4-128, level high)", "rdp-stdsec.rsakeys.pem", "--rdp-server-key"),
    "tls12rsa": ("rdp-tls12-rsa", "TLS 1.2 TLS_RSA_WITH_AES_128_GCM_SHA256", "rdp-tls12-rsa.server-key.pem", "--rdp-server-key"),
    "tls12ecdhe": ("rdp-tls12-ecdhe", "TLS 1.2 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "rdp-tls12-ecdhe.keylog", "--keys"),
    "tls13": ("rdp-tls13", "TLS 1.3 TLS_AES_256_GCM_SHA384", "rdp-tls13.keylog", "--keys"),
    "kbdde": ("rdp-kbd-de", "TLS 1.3 TLS_AES_256_GCM_SHA384", "rdp-kbd-de.keylog", "--keys"),
    "kbdfr": ("rdp-kbd-fr", "TLS 1.3 TLS_AES_256_GCM_SHA384", "rdp-kbd-fr.keylog", "--keys"),
    "video": ("rdp-video", "TLS 1.3 TLS_AES_256_GCM_SHA384", "rdp-video.keylog", "--keys"),
    "stdsecsalted": ("rdp-stdsec-salted", "Standard RDP Security (RC4-128, level high), salted MACs",
                     "rdp-stdsec-salted.rsakeys.pem", "--rdp-server-key"),
    "stdsecrekey": ("rdp-stdsec-rekey", "Standard RDP Security (RC4-128, level high), past a re-key",
                    "rdp-stdsec-rekey.rsakeys.pem", "--rdp-server-key"),
    "tls12cbc": ("rdp-tls12-cbc", "TLS 1.2 TLS_RSA_WITH_AES_256_CBC_SHA (encrypt-then-MAC)",
                 "rdp-tls12-cbc.server-key.pem", "--rdp-server-key"),
    "tls12cbcmte": ("rdp-tls12-cbc-mte", "TLS 1.2 TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256 (MAC-then-encrypt)",
                    "rdp-tls12-cbc-mte.keylog", "--keys"),
    "tls12chacha": ("rdp-tls12-chacha", "TLS 1.2 TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
                    "rdp-tls12-chacha.keylog", "--keys"),
    "tls13chacha": ("rdp-tls13-chacha", "TLS 1.3 TLS_CHACHA20_POLY1305_SHA256", "rdp-tls13-chacha.keylog", "--keys"),
    "nla": ("rdp-nla", "HYBRID (NLA: CredSSP/NTLM) over TLS 1.3 TLS_AES_256_GCM_SHA384", "rdp-nla.keylog", "--keys"),
    "clipfile": ("rdp-clipfile", "TLS 1.3 TLS_AES_256_GCM_SHA384", "rdp-clipfile.keylog", "--keys"),
    "drive": ("rdp-drive", None, "rdp-drive.keylog", "--keys"),        # security: what tshark saw
}
# TLS as tshark names it in the ServerHello (capture_drive records it; rdesktop and xrdp negotiate)
TLS_VERSIONS = {"0x0303": "TLS 1.2", "0x0304": "TLS 1.3"}
TLS_SUITES = {"0x1301": "TLS_AES_128_GCM_SHA256", "0x1302": "TLS_AES_256_GCM_SHA384",
              "0x1303": "TLS_CHACHA20_POLY1305_SHA256", "0xc030": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
              "0xc02f": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}
# gen.sh: where each script clicks (session pixels)
CLICKS_MAIN = ["left click at (300, 100)", "left click at (300, 350)"]
CLICKS_SHORT = ["left click at (300, 100)"]
# gen.sh mk_xrdp_ini: bulk compression is on except for the "video" capture
BULK_COMPRESSION = {cid: cid not in ("video", "nla") for cid in CAPTURES}


def params(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k] = v
    return out


def main() -> None:
    common = params(OUT / "params.txt")
    password, mark = common["RDP_PASS"], common["MARK"]
    manifest: dict[str, dict] = {}
    for cid, (stem, security, keyfile, option) in CAPTURES.items():
        p = params(OUT / f"{stem}.params.txt")
        if security is None:
            security = f"{TLS_VERSIONS[p['tshark_tls_version']]} {TLS_SUITES[p['tshark_tls_ciphersuite']]}"
        session = {
            "protocol": "rdp", "server_port": int(common["PORT"]),
            # The login succeeded (the session ran), but xrdp never sends the Save Session Info
            # PDU that would say so on the wire: the capture can only show "unknown".
            "user": p["user"], "auth": "unknown",
            "auth_attempts": [{"user": p["user"], "result": "unknown"}],
            "client_name": p["client_name"],
            "keyboard_layout": p.get("keyboard_layout", "0x409"),
            "resolution": "800x600",
            "security": security,
            "commands": [], "not_commands": [], "output_contains": [],
            "clipboard": [],
            "gaps": [], "conflicts": 0, "picked_up": False,
            "decrypted": True, "status": "complete", "files": [],
            "secrets": [password],
            "autologon": True,               # xfreerdp /u /p to xrdp: credentials in Client Info
            # xrdp compresses with MPPC 64K, which sessiontap undoes: every session has a replay
            "video": "replay",
            "bulk_compression": BULK_COMPRESSION[cid],
        }
        session["clicks"] = CLICKS_SHORT
        if cid == "nla":
            # capture_nla: FreeRDP's shadow server (NLA only) shares an Xvfb with one xterm; the
            # client negotiates RDPGFX and RDP 6.1 compression, which PyRDP cannot render
            created = [f for f in p["created_files"].split() if not f.startswith(".")]
            session.update(commands=[f"touch {created[0]}"], clicks=["left click at (300, 60)"],
                           domain=p["domain"], auth="success",
                           auth_attempts=[{"user": p["user"], "result": "success"}],
                           video="not reconstructed", bulk_compression=True, autologon=False, nla=True)
            description = ("NLA: CredSSP with NTLM (user and domain in clear inside TLS, password never) "
                           "to FreeRDP's shadow server; the success shows as RDP following CredSSP")
        elif p.get("salted_mac") == "yes":
            # gen.sh stdsecsalted: xrdp drops the connection after the salted-MAC Client Info
            session["video"] = "none"
            session["clicks"] = []
            description = ("xfreerdp /sec:rdp with FreeRDP's default salted MACs; Debian's xrdp accepts "
                           "only plain MACs and logs the client off right after its Client Info PDU")
        elif "clipfile_c2s_name" in p:
            # gen.sh run_clipfile_script: the file gen.sh made on the client, copied there as
            # text/uri-list, listed and copied out of chansrv's FUSE clipboard on the server;
            # gen.sh hashed both the client's file and the server's copy
            name = p["clipfile_c2s_name"]
            assert p["clipfile_c2s_server_copy_sha256"] == p["clipfile_c2s_sha256"], \
                "the server's copy differs from the client's file: the scenario failed"
            session["commands"] = ["xclip -o -selection clipboard -t text/uri-list",
                                   f"cp thinclient_drives/.clipboard/{name} . && sha256sum {name}", "exit"]
            session["files"] = [{"direction": "upload", "path": name, "method": "clipboard",
                                 "size": int(p["clipfile_c2s_size"]), "sha256": p["clipfile_c2s_sha256"]}]
            session["tags"] = ["file-copy"]
            description = ("xfreerdp -> xrdp, TLS 1.3: a file copied on the client (text/uri-list) is "
                           "pasted on the server out of xrdp-chansrv's FUSE clipboard folder")
        elif "drive_read_name" in p:
            # gen.sh capture_drive: rdesktop shares a client folder; on the server the user lists
            # it, copies a file out of it and writes one into it; gen.sh hashed the client's file,
            # the server's copy of it, and what the server wrote into the client's folder
            fin, fout = p["drive_read_name"], p["drive_write_name"]
            assert p["drive_read_server_copy_sha256"] == p["drive_read_sha256"], \
                "the server's copy differs from the client's file: the scenario failed"
            session["commands"] = [f"ls thinclient_drives/{p['drive']}",
                                   f"cp thinclient_drives/{p['drive']}/{fin} . && sha256sum {fin}",
                                   f"seq 1 3000 > thinclient_drives/{p['drive']}/{fout}", "exit"]
            session["files"] = [
                {"direction": "upload", "path": f"{p['drive']}:/{fin}", "method": "rdpdr",
                 "size": int(p["drive_read_size"]), "sha256": p["drive_read_sha256"]},
                {"direction": "download", "path": f"{p['drive']}:/{fout}", "method": "rdpdr",
                 "size": int(p["drive_write_size"]), "sha256": p["drive_write_sha256"]}]
            session["redirected_devices"] = p["drive"]
            session["tags"] = ["file-copy"]
            session["client"] = "rdesktop 1.9"
            session["bulk_compression"] = False         # rdesktop does not offer it without -z
            description = (f"rdesktop -> xrdp, {security}, client folder shared as drive "
                           f"'{p['drive']}': the server copies a file out of it and writes one into it")
        elif "mouse_moves" in p:
            # gen.sh run_rekey_script: more than 4096 encrypted client packets, then a typed line
            session["commands"] = [p["typed_after_moves"], "exit"]
            session["mouse_moves"] = int(p["mouse_moves"])
            description = (f"Standard RDP Security: {p['mouse_moves']} mouse moves (one encrypted fast-path "
                           f"PDU each) carry the client past the 4096-packet RC4 re-key, then a line is typed")
        elif "typed_on_us_keys" in p:
            # run_layout_script: `touch <word>` typed on US keys, read by the server's layout
            created = [f for f in p["created_files"].split() if not f.startswith(".")]
            assert len(created) == 1, created
            session["commands"] = [f"touch {created[0]}", "exit"]
            session["typed_on_us_keys"] = p["typed_on_us_keys"]
            if cid.startswith("kbd"):
                description = (f"xfreerdp announcing keyboard layout {session['keyboard_layout']} types "
                               f"'{p['typed_on_us_keys']}' on US keys; the server ran 'touch {created[0]}'")
            else:
                description = f"short session over {security}: 'touch {created[0]}', exit"
        else:
            # run_session_script, in order; line 3 is "echo " + Shift+Insert pasting the c2s clipboard
            session["commands"] = [
                "xterm -T work -geometry 80x16+40+230 &",
                p["typed_marker_line"],
                f"echo {p['clipboard_c2s']}",
                f"printf {p['clipboard_s2c']} | xclip -selection clipboard",
                "exit", "exit",
            ]
            session["clicks"] = CLICKS_MAIN
            session["clipboard"] = [{"direction": "c2s", "text": p["clipboard_c2s"]},
                                    {"direction": "s2c", "text": p["clipboard_s2c"]}]
            description = (f"xfreerdp -> xrdp, {security}: opens an xterm, types a marker line, "
                           f"pastes client clipboard, copies server clipboard back, logs off")
        manifest[f"{stem}.pcap"] = {
            "description": description,
            "made_by": f"pcaps/make/rdp/gen.sh capture {cid}",
            "oracle": True,
            "keys": keyfile if option == "--keys" else None,
            "rdp_server_key": keyfile if option == "--rdp-server-key" else None,
            "expect_error": None, "sessions": [session],
        }
    manifest.update(damaged(password))
    manifest.update(gapped(manifest["rdp-tls13.pcap"]))
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{OUT / 'manifest.json'}: {len(manifest)} captures (MARK={mark})")


def gapped(source: dict) -> dict[str, dict]:
    """damage.py's rdp-gap-tls13.pcap: the tls13 session less two segments of a mouse glide."""
    p = params(OUT / "rdp-gap-tls13.params.txt")
    lines = (OUT / "rdp-gap-tls13.params.txt").read_text().splitlines()
    gaps = [{"direction": ln.split("=")[1].split()[0], "nbytes": int(ln.split()[1])}
            for ln in lines if ln.startswith("dropped=")]
    session = json.loads(json.dumps(source["sessions"][0]))
    session.update(gaps=gaps, status="partial")
    return {"rdp-gap-tls13.pcap": {
        "description": "the TLS 1.3 session with one segment each way lost during a mouse glide: decryption "
                       "finds the next TLS record, every typed line and both clipboard strings still come out",
        "made_by": "pcaps/make/rdp/damage.py", "oracle": False,
        "keys": source["keys"], "rdp_server_key": None, "expect_error": None,
        "derived_from": p["source"], "sessions": [session]}}


def damaged(password: str) -> dict[str, dict]:
    """The bad-input captures made by damage.py from the real ones (see its docstring)."""
    def entry(desc, src, keys, option, error, decrypted):
        return {
            "description": desc, "made_by": "pcaps/make/rdp/damage.py", "oracle": False,
            "keys": keys if option == "--keys" else None,
            "rdp_server_key": keys if option == "--rdp-server-key" else None,
            "expect_error": error,
            "sessions": [{"protocol": "rdp", "server_port": 3389, "user": "rdpdemo", "auth": "unknown",
                          "decrypted": decrypted, "status": "decode_error", "commands": [],
                          "secrets": [password], "derived_from": src}],
        }
    return {
        "rdp-bad-wrong-key.pcap": entry(
            "TLS 1.2 RSA session (first packets) with a server key that is not the server's",
            "rdp-tls12-rsa.pcap", "rdp-bad-wrong-key.server-key.pem", "--rdp-server-key",
            "none of the given RDP server keys matches", False),
        "rdp-bad-other-keylog.pcap": entry(
            "TLS 1.3 session (first packets) with the key log of another session",
            "rdp-tls13.pcap", "rdp-tls12-ecdhe.keylog", "--keys",
            "no TLS 1.3 traffic secrets in the key log", False),
        "rdp-bad-truncated-handshake.pcap": entry(
            "TLS 1.3 session cut inside the server's first TLS flight",
            "rdp-tls13.pcap", "rdp-tls13.keylog", "--keys",
            "capture ends inside the TLS handshake", False),
        "rdp-bad-garbage-after-x224.pcap": entry(
            "X.224 negotiates TLS, then the client sends bytes that are not TLS",
            "rdp-tls13.pcap", "rdp-tls13.keylog", "--keys",
            "not a TLS record", False),
    }


if __name__ == "__main__":
    main()
