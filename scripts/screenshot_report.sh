#!/usr/bin/env bash
# Render a `batchembed report` page in a real headless browser and save a screenshot,
# to check that it displays (plots decoded, layout intact) without a desktop.
#
#   scripts/screenshot_report.sh REPORT.html SHOT.png [WIDTH,HEIGHT]    (default 1200,2400)
#
# Needs Debian's chromium (`apt-get install -y chromium`); $CHROMIUM overrides the binary.
# The flags keep it offline and stateless: no sandbox (containers run as root), no GPU, no
# background networking, component updates or sync, and a throwaway profile directory.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 REPORT.html SHOT.png [WIDTH,HEIGHT]" >&2
    exit 2
fi
[ -f "$1" ] || { echo "$0: $1: no such file" >&2; exit 3; }
page=$(realpath "$1")
shot=$(realpath -m "$2")
size=${3:-1200,2400}
browser=${CHROMIUM:-chromium}
command -v "$browser" >/dev/null || { echo "$0: $browser not found; apt-get install -y chromium" >&2; exit 4; }

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
rm -f "$shot"
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --hide-scrollbars --window-size="$size" \
    --screenshot="$shot" "file://$page" >/dev/null 2>&1
[ -s "$shot" ] || { echo "$0: no screenshot written to $shot" >&2; exit 1; }
echo "$shot"
