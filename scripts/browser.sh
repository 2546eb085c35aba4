#!/usr/bin/env bash
# A headless browser for localqueue-web's browser tests.
#
#   scripts/browser.sh ensure    # prints "CHROMIUM CHROMEDRIVER" (their paths)
#
# Finds Chromium and its ChromeDriver (LOCALQUEUE_TEST_CHROMIUM and
# LOCALQUEUE_TEST_CHROMEDRIVER, else /usr/bin/chromium and
# /usr/bin/chromedriver), installing Debian's chromium and chromium-driver
# packages first when they are missing and this runs as root with apt-get.
# Everything it prints besides the paths goes to stderr; it exits non-zero
# with a one-line reason if there is no browser to be had.
set -euo pipefail

die() { echo "browser: $*" >&2; exit 1; }

chromium=${LOCALQUEUE_TEST_CHROMIUM:-/usr/bin/chromium}
driver=${LOCALQUEUE_TEST_CHROMEDRIVER:-/usr/bin/chromedriver}

present() { [ -x "$chromium" ] && [ -x "$driver" ]; }

install_browser() {
    [ "$(id -u)" = 0 ] || return 1
    command -v apt-get >/dev/null || return 1
    echo "browser: installing Debian's chromium and chromium-driver packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; } >&2 || return 1
}

case "${1:-}" in
    ensure)
        if ! present; then
            install_browser || die "no $chromium and $driver, and they could not be installed" \
                "(as root: apt-get install chromium chromium-driver)"
            present || die "installed, but $chromium or $driver is still missing"
        fi
        echo "$chromium $driver"
        ;;
    *)
        die "usage: scripts/browser.sh ensure"
        ;;
esac
