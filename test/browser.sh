#!/usr/bin/env bash
# Ensures a headless-capable Chromium is installed for the browser tests
# (pkg/api TestPersonPageBrowser). Installs Debian's `chromium` package when
# `command -v chromium` fails; runs `apt-get update` at most once per call.
# Usage: test/browser.sh            (install when missing, print the path)
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
	command -v chromium
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "test/browser.sh: chromium is missing and we are not root (no sudo)" >&2
		exit 1
	fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core
command -v chromium
