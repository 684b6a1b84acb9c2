#!/usr/bin/env bash
# sessiontap quick start on a fresh Debian 12 machine.
#   ./quickstart.sh demo   install, then import the bundled sample captures and list the sessions
#   ./quickstart.sh test   install, then run the whole test suite
# Installs what it needs: Debian packages (with apt-get, as root or through sudo) and the
# Python packages (into .venv beside this script).
set -eo pipefail
cd "$(dirname "$0")"
what="${1:-}"
case "$what" in demo|test|install) ;; *) echo "usage: $0 demo|test|install" >&2; exit 2 ;; esac

# tshark: the tests' oracle; asciinema: recordings must play; the libraries: Qt offscreen for RDP
# video; tcpdump: the live sensor compiles its kernel filter with it; tcpreplay, iproute2, telnetd,
# telnet, expect: the live tests' virtual SPAN port and real sessions; chromium: the console's
# browser tests
DEB_PACKAGES=(python3 python3-venv python3-pip tshark asciinema libgl1 libegl1 libxkbcommon0 libfontconfig1
              libdbus-1-3 tcpdump tcpreplay iproute2 inetutils-telnetd inetutils-telnet expect chromium)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3 may come from elsewhere (pyenv, an image): any python >= 3.11 with venv will do
PY=python3
if command -v python3 >/dev/null && python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  keep=()
  for p in "${missing[@]}"; do case "$p" in python3|python3-venv|python3-pip) ;; *) keep+=("$p") ;; esac; done
  missing=("${keep[@]}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}" >&2
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections 2>/dev/null || true
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-upgrade "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  $PY -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e '.[test,video]' 2>&1 | grep -v -i "warning\|ignored" >&2 || true
# PyRDP (RDP parsers and replay format): its pins are too old to honour, see pyproject.toml
.venv/bin/python -m pip install -q --no-deps 'pyrdp-mitm==2.1.0' 2>&1 | grep -v -i "warning\|ignored" >&2 || true
.venv/bin/python -c 'import appliance.cli' || { echo "installation failed" >&2; exit 1; }

if [ "$what" = demo ]; then
  export SESSIONTAP_HOME="${SESSIONTAP_HOME:-$PWD/.sessiontap-demo}"
  exec .venv/bin/python -m appliance.demo
elif [ "$what" = test ]; then
  exec .venv/bin/python -m pytest -n 2 -q tests "${@:2}"
fi
