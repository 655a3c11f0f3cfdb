#!/usr/bin/env bash
# Install Debian packages where apt is there and we may use it (root, or sudo without a password);
# otherwise say so and exit 1. COURSE_NO_APT=1 turns apt off (as for `make data`).
# Used by the Makefile for the book's and the browser tests' system tools: npm, chromium.
set -euo pipefail
if [ -n "${COURSE_NO_APT:-}" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "apt is not available here (or COURSE_NO_APT is set): install $* yourself" >&2
  exit 1
fi
if [ "$(id -u)" = 0 ]; then
  apt=(apt-get)
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  apt=(sudo -n apt-get)
else
  echo "not root and no password-less sudo: install $* yourself (sudo apt-get install $*)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "\$ ${apt[*]} install -y --no-install-recommends $*"
if ! "${apt[@]}" install -y -q --no-install-recommends "$@"; then
  echo "apt-get install failed; refreshing the package lists and trying once more"
  "${apt[@]}" update -q
  "${apt[@]}" install -y -q --no-install-recommends "$@"
fi
