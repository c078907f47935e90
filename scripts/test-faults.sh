#!/usr/bin/env bash
# The second test tier (`npm run test:faults`): multi-process fault suites,
# files named test/**/*.fault.ts (so `npm test`, which runs *.test.ts, never
# picks them up). Like scripts/test.sh: makes sure the real components are
# installed, then runs the suites one file at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-components.sh
# The Kafka-protocol test broker (see scripts/test.sh).
if [ -z "${KFAKE_BIN:-}" ] && [ -x ../shared/tools/kafka/kfake-server ]; then
  export KFAKE_BIN=../shared/tools/kafka/kfake-server
fi
# Node's compile cache (see scripts/test.sh).
export NODE_COMPILE_CACHE="${NODE_COMPILE_CACHE:-$PWD/node_modules/.cache/node-compile-cache}"
# Bounded: 20 minutes for the whole tier (each suite bounds its own waits far
# below that); members and servers die with the test process (stdin EOF /
# exit hooks in test/harness).
exec timeout --kill-after=30 1200 \
  node --test --test-concurrency=1 --test-timeout=600000 "${@:-test/**/*.fault.ts}"
