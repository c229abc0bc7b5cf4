#!/bin/sh
# The steps of machines/saga.ron: `sh machines/scripts/saga.sh STEP [ARG]`.
#
# orca runs it from the directory `orca run` was started in (the workflow sets no `cwd`), so
# run the workflow from the repository root. Every booking and every undo is a marker file
# under $ORCA_RUN_DIR/saga and a line in $ORCA_RUN_DIR/saga/ledger.log, in the order it
# happened. Needs nothing but sh and coreutils.
set -eu
: "${ORCA_RUN_DIR:?run me through orca: orca run machines/saga.ron}"
dir=$ORCA_RUN_DIR/saga
step=${1:?usage: saga.sh STEP [ARG]}
mkdir -p "$dir"

ledger() { echo "$*" >>"$dir/ledger.log"; echo "$*" >&2; }

case $step in
book) # flight, hotel, car: a reservation that can be cancelled
    what=${2:?what to book}
    sleep "${BOOKING_LATENCY:-0}"
    ref=$(printf '%s-%s' "$what" "$TRIP" | cksum | cut -d' ' -f1)
    echo "$ref" >"$dir/$what.booked"
    ledger "booked $what ($ref)"
    printf '{"booked":"%s","ref":"%s"}\n' "$what" "$ref"
    ;;

cancel) # compensation of a booking
    what=${2:?what to cancel}
    [ -f "$dir/$what.booked" ] || { echo "nothing booked for $what" >&2; exit 1; }
    mv "$dir/$what.booked" "$dir/$what.cancelled"
    ledger "cancelled $what"
    ;;

charge) # payment: charge the card for what is booked
    amount=0
    for f in "$dir"/*.booked; do amount=$((amount + 100)); done
    echo "$amount" >"$dir/payment.charged"
    ledger "charged $amount EUR"
    printf '{"charged":%d,"currency":"EUR"}\n' "$amount"
    ;;

refund) # compensation of payment
    amount=$(cat "$dir/payment.charged")
    mv "$dir/payment.charged" "$dir/payment.refunded"
    ledger "refunded $amount EUR"
    ;;

issue-tickets) # the late step that fails, on every attempt
    ledger "ticketing attempt $ORCA_ATTEMPT: refused"
    echo "airline: fare class V for $TRIP is no longer available (HTTP 409)" >&2
    exit 1
    ;;

email) # never reached: its dependency fails
    ledger "itinerary sent"
    ;;

*)
    echo "saga.sh: unknown step $step" >&2
    exit 2
    ;;
esac
