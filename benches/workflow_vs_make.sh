#!/bin/sh
# orca against `make -j8` on the same generated DAG of N operations running `true`,
# side by side in one run. Usage: benches/workflow_vs_make.sh [N] [RUNS]
# Uses farm-bench (medians and the pair ratio) when it is on PATH, else a plain loop.
set -eu
N=${1:-1000}
RUNS=${2:-11}
cd "$(dirname "$0")/.."
cargo build --release --quiet --example gen_dag
cargo build --release --quiet
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
target/release/examples/gen_dag "$N" "$DIR"
ORCA="$PWD/target/release/orca"
ORCA_CMD="rm -rf $DIR/run && $ORCA run $DIR/dag.ron --run-dir $DIR/run --max-parallel 8 --sync never > /dev/null"
MAKE_CMD="make -s -j8 -C $DIR > /dev/null"
if command -v farm-bench > /dev/null; then
    farm-bench -n "$RUNS" --timeout 600 --vs "sh -c '$MAKE_CMD'" -- sh -c "$ORCA_CMD"
else
    for cmd in "$ORCA_CMD" "$MAKE_CMD"; do
        echo "$cmd"
        time sh -c "i=0; while [ \$i -lt $RUNS ]; do $cmd; i=\$((i+1)); done"
    done
fi
