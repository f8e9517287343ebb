#!/usr/bin/env bash
# Makes sure Debian's chromium is installed for the browser tests (no browser
# downloads work here: tests drive /usr/bin/chromium headless via chromedp).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
command -v apt-get >/dev/null || { echo "browser: install chromium yourself (no apt-get)" >&2; exit 1; }
echo "browser: installing chromium from the OS packages" >&2
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update -qq
sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
