#!/usr/bin/env bash
# Installs the Debian packages the integration tests need (nats-server,
# postgresql) when they are missing. Needs root for apt-get; otherwise it says
# what to install and fails. Go and nats.go (for the Go SDK interop test,
# test/interop) are installed too when we are root; without root their absence
# only makes that test skip.
set -euo pipefail
missing=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then missing+=(postgresql); fi
optional=()
command -v go >/dev/null 2>&1 || optional+=(golang-go)
[ -d /usr/share/gocode/src/github.com/nats-io/nats.go ] || optional+=(golang-github-nats-io-go-nats-dev)
if [ "$(id -u)" != "0" ]; then
  if [ ${#optional[@]} -gt 0 ]; then
    echo "Optional Debian packages missing (the Go interop test will skip): ${optional[*]}" >&2
  fi
  [ ${#missing[@]} -eq 0 ] && exit 0
  echo "Missing Debian packages: ${missing[*]}. Install them (sudo apt-get install -y ${missing[*]}) and re-run." >&2
  exit 1
fi
missing+=("${optional[@]}")
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing ${missing[*]} (Debian packages) ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packages may start system services; our tests spawn their own servers on
# free loopback ports, so stop those to keep the machine quiet.
if command -v systemctl >/dev/null 2>&1; then systemctl stop nats-server postgresql >/dev/null 2>&1 || true; fi
