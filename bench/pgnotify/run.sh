#!/usr/bin/env bash
# What NOTIFY costs a commit, measured with pgbench alone (no Herald): the
# transactions per second of plain.sql (one INSERT per transaction) against
# notify.sql (the same INSERT plus SELECT pg_notify('bench', 'x') in the same
# transaction), 8 clients on 2 threads for 15 s each, synchronous_commit on.
# Three rounds, plain and notify alternating, on a scratch database the
# script creates and drops; it prints every run, the medians and the ratio.
#
#   bench/pgnotify/run.sh                      # Postgres on 127.0.0.1:5432 as postgres
#   PGHOST=db PGUSER=me bench/pgnotify/run.sh  # the usual libpq variables
#   ROUNDS=5 SECONDS_EACH=30 bench/pgnotify/run.sh
#
# By hand, one round is:
#
#   createdb herald_bench_pgnotify
#   psql -q -d herald_bench_pgnotify -f bench/pgnotify/schema.sql
#   PGOPTIONS='-c synchronous_commit=on' pgbench -n -c 8 -j 2 -T 15 -f bench/pgnotify/plain.sql herald_bench_pgnotify
#   psql -q -d herald_bench_pgnotify -c 'TRUNCATE bench_messages'
#   PGOPTIONS='-c synchronous_commit=on' pgbench -n -c 8 -j 2 -T 15 -f bench/pgnotify/notify.sql herald_bench_pgnotify
#   dropdb herald_bench_pgnotify
#
# Nobody LISTENs during the runs: Postgres takes the commit-time lock and
# writes the notification queue whether or not anyone listens, which is the
# cost measured here. (go test -run x -bench Publish ./internal/store/postgres/
# measures the same through Herald's store, with a listener draining.)
set -euo pipefail
cd "$(dirname "$0")"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
db="${DB:-herald_bench_pgnotify}"
rounds="${ROUNDS:-3}"
secs="${SECONDS_EACH:-15}"

createdb "$db"
trap 'dropdb --if-exists "$db"' EXIT
psql -q -X -v ON_ERROR_STOP=1 -d "$db" -f schema.sql

tps() {
  psql -q -X -v ON_ERROR_STOP=1 -d "$db" -c 'TRUNCATE bench_messages'
  # Start each run from a clean buffer cache state; needs the right to
  # CHECKPOINT, which is only fairness, not correctness.
  psql -q -X -d "$db" -c 'CHECKPOINT' >/dev/null 2>&1 || true
  PGOPTIONS='-c synchronous_commit=on' pgbench -n -c 8 -j 2 -T "$secs" -f "$1" "$db" 2>/dev/null |
    awk '/^tps = / { print $3; exit }'
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

plain=() notify=()
for r in $(seq 1 "$rounds"); do
  p=$(tps plain.sql) n=$(tps notify.sql)
  plain+=("$p") notify+=("$n")
  printf 'round %d: plain %8.0f tps  notify %8.0f tps\n' "$r" "$p" "$n"
done
mp=$(median "${plain[@]}") mn=$(median "${notify[@]}")
awk -v p="$mp" -v n="$mn" 'BEGIN { printf "median:  plain %8.0f tps  notify %8.0f tps  notify/plain %.2f\n", p, n, n / p }'
