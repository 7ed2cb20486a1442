#!/usr/bin/env bash
# The browser the report tests drive (tests/browser.py): Debian's chromium and chromedriver, installed where missing
# (as root, or through sudo). Nothing happens where both are on the PATH already.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
echo "installing Debian's chromium and chromium-driver for the report tests" >&2
$SUDO apt-get install -y -q chromium chromium-driver >/dev/null ||
  { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium chromium-driver >/dev/null; }
