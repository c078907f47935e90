#!/usr/bin/env bash
# The README's test command (`npm test`): makes sure the real components the
# integration tests spawn are installed, then runs every test with node --test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-components.sh
# The Kafka-protocol test broker (kfake-server) lives outside the repository;
# KAFKA_BROKERS (a real cluster) takes precedence over it in the tests.
if [ -z "${KFAKE_BIN:-}" ] && [ -x ../shared/tools/kafka/kfake-server ]; then
  export KFAKE_BIN=../shared/tools/kafka/kfake-server
fi
# One file at a time: tests spawn their own servers and measure memory; two
# cores do not leave room for parallel files.
exec node --test --test-concurrency=1 --test-timeout=600000 "${@:-test/**/*.test.ts}"
