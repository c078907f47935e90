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
# Every test file is its own Node process, and each strips the types of the
# same few hundred source files again: Node's compile cache keeps the result
# (keyed by each file's content) and halves a process's start-up CPU. An
# absolute path, as tests start processes in other directories too.
export NODE_COMPILE_CACHE="${NODE_COMPILE_CACHE:-$PWD/node_modules/.cache/node-compile-cache}"
# Two files at a time, one per core: most files spend their time waiting on
# the servers they spawned (each on its own port and store), and no test's
# outcome may depend on how busy the machine is (the rule every test follows,
# since CI machines are shared). Memory figures printed by tests are
# per-process and informational. The fault tier stays one file at a time.
exec node --test --test-concurrency=2 --test-timeout=600000 "${@:-test/**/*.test.ts}"
