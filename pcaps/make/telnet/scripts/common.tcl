# Shared helpers for the telnet capture expect scripts.
# Usage inside a script:  source [file join [file dirname [info script]] common.tcl]
# Parameters come from the environment (gen.sh exports them):
#   TN_HOST TN_PORT TN_BB_PORT MARK TN_USER TN_PASS TN_USER2 TN_PASS2 TN_BAD_USER TN_BAD_PASS TN_WRONG_PASS
set timeout 40
log_user 1
# human-like typing: {typical-gap word-end-gap variability min max} seconds
set send_human {.07 .20 1 .03 .35}
expect_after {
    timeout { send_user "\n*** EXPECT TIMEOUT in [info script]\n"; exit 2 }
}
proc envor {name default} {
    global env
    if {[info exists env($name)] && $env($name) ne ""} { return $env($name) }
    return $default
}
proc envreq {name} {
    global env
    if {[info exists env($name)] && $env($name) ne ""} { return $env($name) }
    send_user "\n*** environment variable $name is required\n"; exit 2
}
set host      [envor TN_HOST 127.0.0.1]
set port      [envor TN_PORT 2323]
set bbport    [envor TN_BB_PORT 2324]
set mark      [envor MARK st]
set user      [envor TN_USER tndemo]
set user2     [envor TN_USER2 tndemo2]
set baduser   [envor TN_BAD_USER nosuchuser]
# seconds of the "sleep N" command that Ctrl-C interrupts after 1.5 s (short keeps captures short)
set sleepcmd  [envor TN_SLEEP 5]
# type a string with per-keystroke gaps (one TCP segment per key in char mode)
proc type {s} { send -h -- $s }
# one raw key (e.g. \x7f, \x03, \x1b)
proc key {k} { send -- $k }
# 80x24 window so NAWS / top / vi are deterministic
proc setsize {} {
    global spawn_out
    catch { exec stty rows 24 columns 80 < $spawn_out(slave,name) }
}
# wait for a bash prompt  user@host:dir$
proc waitprompt {} { expect -re {@[^:\r\n]+:[^\r\n]*\$ } }
# wait for a line of command OUTPUT equal to the marker (not the echoed command line)
proc waitline {m} { expect -re "\[\r\n\]$m\r\n" }
# "echo <prefix>XX" <DEL> <DEL> "-ok" <Enter>: a typo fixed with two backspaces (DEL, 0x7f);
# the shell runs "echo <prefix>-ok"
proc typo_fix {prefix} {
    type "echo ${prefix}XX"; sleep 0.4; key "\x7f"; sleep 0.25; key "\x7f"; sleep 0.4
    type "-ok\r"
}
