"""Rules: a command as it ran -> the tags the default pack gives it; and the pack format."""
from __future__ import annotations

import pytest

from reconstruct.events import CommandEntered, CommandOutput, FileTransfer, Output, Tagged
from reconstruct.rules import RuleSet

DEFAULT = RuleSet.default()

EXPECTED = {
    # config-change
    "configure terminal": ["config-change"],
    "conf t": ["config-change"],
    "CONF T": ["config-change"],
    "write memory": ["config-change"],
    "wr mem": ["config-change"],
    "copy running-config startup-config": ["config-change"],
    "copy run start": ["config-change"],
    "echo 10.0.0.9 gw | sudo tee -a /etc/hosts": ["config-change", "privilege-change"],
    "sed -i s/^/st-/ /etc/motd": ["config-change"],
    "vi /etc/network/interfaces": ["config-change"],
    "echo nameserver 1.1.1.1 > /etc/resolv.conf": ["config-change"],
    # file-copy
    "scp fw.bin root@10.0.0.5:/tmp/": ["file-copy"],
    "sftp plc@10.0.0.5": ["file-copy"],
    "tftp -g -r fw.bin 10.0.0.1": ["file-copy"],
    "cp /etc/hostname /tmp/st-copy": ["file-copy"],
    "curl -o /tmp/x http://10.0.0.1/x": ["file-copy"],
    "wget http://10.0.0.1/x": ["file-copy"],
    "copy flash:ios.bin tftp:": ["file-copy"],
    "copy running-config tftp://10.0.0.1/r1.cfg": ["config-change", "file-copy"],
    # firmware-upgrade
    "boot system flash:c2960-new.bin": ["firmware-upgrade"],
    "install add file flash:cat9k.bin activate commit": ["firmware-upgrade"],
    "archive download-sw /overwrite tftp://10.0.0.1/c2960.tar": ["firmware-upgrade"],
    "request system software add /var/tmp/junos.tgz": ["firmware-upgrade"],
    "fwupdate -i /tmp/st-fw.bin": ["firmware-upgrade"],
    "sysupgrade -n /tmp/openwrt.bin": ["firmware-upgrade"],
    # privilege-change
    "su -": ["privilege-change"],
    "sudo -n true": ["privilege-change"],
    "doas sh": ["privilege-change"],
    "enable": ["privilege-change"],
    # destructive
    "rm -rf /tmp/st-copy": ["destructive"],
    "sudo -u root rm -fr /data": ["privilege-change", "destructive"],
    "cd /; rm -r x": ["destructive"],
    "reload": ["destructive"],
    "write erase": ["destructive"],
    "erase startup-config": ["destructive"],
    "format flash:": ["destructive"],
    "mkfs.ext4 /dev/sdb1": ["destructive"],
    "dd if=/dev/zero of=/dev/sda bs=1M": ["destructive"],
    "shutdown -h now": ["destructive"],
    "ls && sudo reboot": ["privilege-change", "destructive"],
    # nothing: the word appears, but not as a command
    "echo sudo": [],
    "man sudo": [],
    "echo rm -rf /": [],
    "grep enable /etc/x": [],
    "printf 'conf t'": [],
    "rm notes.txt": [],
    "curl http://10.0.0.1/status": [],
    "id": [],
}


@pytest.mark.parametrize("command", list(EXPECTED))
def test_default_pack_tags(command):
    assert DEFAULT.tags_for(command) == EXPECTED[command]


def test_tagged_points_at_the_command():
    ev = CommandEntered(ts=5.0, index=3, text="sudo reboot")
    assert DEFAULT.apply(ev) == [
        Tagged(ts=5.0, tag="privilege-change", severity="medium", rule="sudo-su-doas", text="sudo reboot",
               ref_kind="command", ref_index=3),
        Tagged(ts=5.0, tag="destructive", severity="high", rule="shutdown-reboot", text="sudo reboot",
               ref_kind="command", ref_index=3),
    ]


def test_output_rules_match_output_and_show_the_matching_line():
    ev = CommandOutput(ts=7.0, index=2, text="r1#\nBuilding configuration...\n[OK]")
    (t,) = DEFAULT.apply(ev)
    assert (t.tag, t.text, t.ref_index) == ("config-change", "Building configuration...", 2)
    assert DEFAULT.apply(Output(ts=1.0, data=b"rm -rf /")) == []


def test_a_pack_of_its_own():
    rs = RuleSet.from_toml('''
[[rule]]
name = "modbus-write-tool"
tag = "ot-write"
severity = "critical"
pattern = '{cmd}mbpoll\\b[^;&|]*\\s-r'
''')
    assert rs.tags_for("mbpoll -a 1 -r 100 10.0.0.7 42") == ["ot-write"]
    assert rs.tags_for("echo mbpoll -r") == []


@pytest.mark.parametrize("text, problem", [
    ('[[rule]]\nname="a"\ntag="t"\npattern="("', "bad pattern"),
    ('[[rule]]\nname="a"\ntag="t"\npattern="x"\nseverity="urgent"', "severity must be"),
    ('[[rule]]\nname="a"\ntag="t"\npattern="x"\nwhen="x"', "unknown keys"),
    ('[[rule]]\nname="a"\npattern="x"', "'tag' must be"),
    ('[[rule]]\nname="a"\ntag="t"\npattern="x"\n[[rule]]\nname="a"\ntag="t"\npattern="y"', "duplicate"),
    ('[[rule]\n', "not valid TOML"),
])
def test_bad_packs_are_refused_with_the_reason(text, problem):
    with pytest.raises(ValueError, match=problem):
        RuleSet.from_toml(text)


@pytest.mark.parametrize("method,direction,path,tags", [
    ("sftp", "upload", "/flash/fw-2.4.bin", ["file-copy", "firmware-upgrade"]),
    ("scp", "download", "/etc/plc/recipe.csv", ["file-copy"]),
    ("clipboard", "upload", "S7-1500_V2.9.upd", ["file-copy", "firmware-upgrade"]),
    ("rdpdr", "download", "share:/backup/project.zap16", ["file-copy"]),
])
def test_every_file_moved_is_a_file_copy_and_firmware_names_an_upgrade(method, direction, path, tags):
    got = RuleSet.default().apply(FileTransfer(5.0, direction, path, 100, "ab" * 32, method))
    assert sorted(t.tag for t in got) == tags
    assert all(t.ref_kind == "file" and t.text == f"{method} {direction} {path}" for t in got)
