#!/usr/bin/env bash
# The browser the report tests drive (tests/browser.py): Debian's chromium and chromedriver, installed where missing
# (as root, or through sudo). Nothing happens where both are on the PATH already. Where they cannot be installed it
# says so and the rest of the suite runs: the report's browser test then fails, naming this script.
set -uo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "tests/install-browser.sh: not root and no sudo: install Debian's chromium and chromium-driver yourself" >&2; exit 0; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
echo "installing Debian's chromium and chromium-driver for the report tests" >&2
$SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 ||
  { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } ||
  echo "tests/install-browser.sh: apt-get could not install chromium and chromium-driver" >&2
exit 0
