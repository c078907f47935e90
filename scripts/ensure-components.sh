#!/usr/bin/env bash
# Installs the Debian packages the integration tests need (nats-server,
# postgresql) when they are missing. Needs root for apt-get; otherwise it says
# what to install and fails.
set -euo pipefail
missing=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then missing+=(postgresql); fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != "0" ]; then
  echo "Missing Debian packages: ${missing[*]}. Install them (sudo apt-get install -y ${missing[*]}) and re-run." >&2
  exit 1
fi
echo "Installing ${missing[*]} (Debian packages) ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packages may start system services; our tests spawn their own servers on
# free loopback ports, so stop those to keep the machine quiet.
if command -v systemctl >/dev/null 2>&1; then systemctl stop nats-server postgresql >/dev/null 2>&1 || true; fi
