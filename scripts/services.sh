#!/usr/bin/env bash
# Start PostgreSQL and Redis when they are installed but not running (a plain
# Debian machine); do nothing when they already answer. Only loopback is used.
set -euo pipefail

PGHOST_=127.0.0.1
PGPORT_=5432
REDIS_PORT_=6379

pg_up() { (exec 3<>/dev/tcp/$PGHOST_/$PGPORT_) 2>/dev/null; }
redis_up() { (exec 3<>/dev/tcp/127.0.0.1/$REDIS_PORT_) 2>/dev/null; }

wait_up() {  # name, check function
  for _ in $(seq 1 60); do "$2" && return 0; sleep 0.5; done
  echo "error: $1 did not come up on 127.0.0.1" >&2; return 1
}

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    version=$(ls /etc/postgresql | sort -V | tail -1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster "$version" main start
    wait_up PostgreSQL pg_up
  else
    echo "error: PostgreSQL is not running on 127.0.0.1:5432 and is not installed." >&2
    echo "       install it with: apt-get install postgresql  (trust auth for 127.0.0.1, see README)" >&2
    exit 1
  fi
fi

if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "starting Redis"
    mkdir -p /tmp/stepwise-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port $REDIS_PORT_ --save "" \
      --appendonly no --dir /tmp/stepwise-redis --logfile /tmp/stepwise-redis/redis.log
    wait_up Redis redis_up
  else
    echo "error: Redis is not running on 127.0.0.1:6379 and is not installed." >&2
    echo "       install it with: apt-get install redis-server" >&2
    exit 1
  fi
fi

# RabbitMQ is optional (the RabbitMQ pass of the tests, or CELERY_BROKER_URL=amqp://):
# start it when it is installed but stopped; never fail without it.
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && command -v rabbitmq-server >/dev/null 2>&1; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break; sleep 0.5; done
fi
