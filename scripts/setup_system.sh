#!/usr/bin/env bash
# System programs lantern calls (Debian packages): ffmpeg/ffprobe to read audio and video for
# `lantern predict`, and chromium + chromedriver for the report and web-app browser tests.
# Installs what is missing when run as root with apt-get; otherwise says what to install.
set -euo pipefail
missing=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: ffmpeg, chromium, chromium-driver already installed"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup_system.sh: please install the Debian/Ubuntu packages: ${missing[*]}" >&2
  echo "  (recordings need ffmpeg; browser tests need chromium and chromium-driver)" >&2
fi
