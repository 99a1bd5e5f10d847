#!/usr/bin/env bash
# The dashboard's end-to-end tests drive Debian's Chromium through chromedriver.
# Install both when missing (CI on a fresh machine runs as root); do nothing
# when they are already there.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "error: /usr/bin/chromium and /usr/bin/chromedriver are missing;" >&2
  echo "       install them with: apt-get install chromium chromium-driver" >&2
  exit 1
fi
echo "installing chromium and chromium-driver for the dashboard tests"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
