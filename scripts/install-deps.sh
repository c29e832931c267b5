#!/usr/bin/env bash
# install-deps.sh: install the Debian packages the tests use, each only when
# its command is missing. Idempotent; skips with a message when not root.
#
# PACKAGES lists "command:package" pairs: the command that must be on PATH,
# and the Debian package that provides it.
#   chromium:   headless browser for the dashboard's end-to-end test (chromedp)
#   promtool:   checks the prometheus module's and monsim's metrics output
#   prometheus: a real Prometheus server that scrapes them in the e2e test
# Several commands may come from one package; each package is installed once.
set -euo pipefail

PACKAGES=(
	"chromium:chromium"
	"promtool:prometheus"
	"prometheus:prometheus"
)

missing=()
for entry in "${PACKAGES[@]}"; do
	cmd=${entry%%:*}
	pkg=${entry#*:}
	if command -v "$cmd" >/dev/null 2>&1; then
		echo "install-deps: $cmd found ($(command -v "$cmd"))"
	else
		case " ${missing[*]} " in
		*" $pkg "*) ;; # already listed for another command
		*) missing+=("$pkg") ;;
		esac
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: not root; skipping the install of: ${missing[*]} (tests that need them skip)"
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: no apt-get; skipping the install of: ${missing[*]} (tests that need them skip)"
	exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
