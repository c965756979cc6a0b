#!/usr/bin/env bash
# Prepare a CI machine for the real-browser tests (pytest -m browser): Debian's Chromium, nothing else.
# Idempotent: apt runs only when /usr/bin/chromium is missing. Playwright must never download a browser, so
# the tests point it at /usr/bin/chromium; JupyterLab settings are written by the tests into a temp dir
# (binder/jupyterlab-overrides.json + autosave off), so nothing global is configured here.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "browser_setup: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) already installed"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium
/usr/bin/chromium --version
