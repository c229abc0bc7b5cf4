#!/bin/sh
# Workflows through PostgreSQL against the file store, on the same generated DAG of N
# operations running `true` (docs/performance.md, "Scale-out").
#   - file store: one `orca run --max-parallel 32` process;
#   - PostgreSQL: `orca run --store URL --workers 0 --max-parallel 32` coordinating, and 4
#     `orca worker --concurrency 8` processes on this machine.
#   - no orchestration at all: `xargs -P 32` starting the same N `true` processes, the
#     ceiling that this machine's process creation sets for both.
# A throwaway PostgreSQL with its default settings (fsync and synchronous_commit on) is
# started in a temporary directory. Prints operations/s for each run, the medians, their
# ratios, and the claim latency (ready → claimed) median and p99 of the last PostgreSQL run.
# Usage: benches/scale_out.sh [N] [RUNS]
set -eu
N=${1:-10000}
RUNS=${2:-3}
cd "$(dirname "$0")/.."
cargo build --release --quiet --example gen_dag
cargo build --release --quiet
ORCA="$PWD/target/release/orca"
DIR=$(mktemp -d)
AS=""
if [ "$(id -u)" = 0 ]; then chown postgres: "$DIR"; AS="runuser -u postgres --"; fi
$AS initdb -D "$DIR/data" -A trust -U postgres -E UTF8 --locale=C >/dev/null
$AS pg_ctl -D "$DIR/data" -w -l "$DIR/log" -o "-k $DIR -c listen_addresses='' -c max_connections=100" start >/dev/null
trap '$AS pg_ctl -D "$DIR/data" -m fast stop >/dev/null 2>&1; rm -rf "$DIR"' EXIT
target/release/examples/gen_dag "$N" "$DIR"
now() { date +%s.%N; }
rate() { echo "$N $1 $2" | awk '{ printf "%.0f", $1 / ($3 - $2) }'; }
median() { tr ' ' '\n' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
FILES=""
PG=""
BARE=""
i=0
while [ $i -lt "$RUNS" ]; do
    i=$((i + 1))
    rm -rf "$DIR/run"
    t0=$(now)
    "$ORCA" run "$DIR/dag.ron" --run-dir "$DIR/run" --max-parallel 32 >/dev/null 2>&1
    t1=$(now)
    FILES="$FILES $(rate "$t0" "$t1")"
    t0=$(now)
    seq "$N" | xargs -P 32 -n 1 true
    t1=$(now)
    BARE="$BARE $(rate "$t0" "$t1")"
    psql -q "postgresql://postgres@/postgres?host=$DIR" -c "DROP DATABASE IF EXISTS b" -c "CREATE DATABASE b"
    URL="postgresql://postgres@/b?host=$DIR"
    # The schema first, so that the workers start polling a ready database.
    "$ORCA" runs --store "$URL" >/dev/null 2>&1 || true
    W=""
    for _ in 1 2 3 4; do
        "$ORCA" worker --store "$URL" --concurrency 8 2>/dev/null &
        W="$W $!"
    done
    sleep 0.5
    t0=$(now)
    "$ORCA" run "$DIR/dag.ron" --store "$URL" --workers 0 --max-parallel 32 --run-dir "$DIR/pgrun/dag" >/dev/null 2>&1
    t1=$(now)
    kill $W
    wait $W 2>/dev/null || true
    PG="$PG $(rate "$t0" "$t1")"
    echo "run $i: file store $(echo "$FILES" | awk '{ print $NF }') ops/s, PostgreSQL $(echo "$PG" | awk '{ print $NF }') ops/s, bare xargs -P 32 $(echo "$BARE" | awk '{ print $NF }') processes/s"
done
F=$(echo $FILES | median)
P=$(echo $PG | median)
B=$(echo $BARE | median)
echo "medians over $RUNS runs of $N operations: file store $F ops/s, PostgreSQL $P ops/s, ratio $(echo "$P $F" | awk '{ printf "%.2f", $1 / $2 }')"
echo "ceiling: $B true processes/s with no orchestration (xargs -P 32); file store at $(echo "$F $B" | awk '{ printf "%.2f", $1 / $2 }') of it, PostgreSQL at $(echo "$P $B" | awk '{ printf "%.2f", $1 / $2 }')"
psql -q -A -t "postgresql://postgres@/b?host=$DIR" -c "SELECT 'claim latency (ready → claimed): median ' || round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM claimed_at - ready_at))::numeric, 2) || ' ms, p99 ' || round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM claimed_at - ready_at))::numeric, 2) || ' ms over ' || count(*) || ' claims' FROM orca_work"
