#!/usr/bin/env bash
# The test command behind `make test`. With no arguments: the whole suite with
# Redis as the broker, then the end-to-end and reliability suites again with
# RabbitMQ as the broker (when RabbitMQ is reachable). With arguments: pytest
# with those arguments only.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

if [ "$#" -gt 0 ]; then
  exec "$PY" -m pytest "$@"
fi

"$PY" -m pytest

if (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && command -v rabbitmqctl >/dev/null 2>&1; then
  echo "== the same end-to-end and reliability scenarios with RabbitMQ as the broker =="
  STEPWISE_TEST_BROKER=amqp "$PY" -m pytest tests/e2e tests/reliability tests/ops/test_shutdown.py
else
  echo "== RabbitMQ is not reachable on 127.0.0.1:5672: skipping the RabbitMQ pass =="
fi
