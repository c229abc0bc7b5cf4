#!/bin/sh
# The steps of machines/release.ron: `sh machines/scripts/release.sh STEP [ARG]`.
#
# orca runs it from the directory `orca run` was started in (the workflow sets no `cwd`), so
# run the workflow from the repository root. It writes only under $ORCA_RUN_DIR and prints
# each step's result as one line of JSON on stdout (the phase output); chatter goes to stderr.
# Needs nothing but sh and coreutils.
set -eu
: "${ORCA_RUN_DIR:?run me through orca: orca run machines/release.ron}"
version=${RELEASE_VERSION:-0.0.0}
art=$ORCA_RUN_DIR/artifacts
live=$ORCA_RUN_DIR/live
step=${1:?usage: release.sh STEP [ARG]}

say() { echo "[${ORCA_OPERATION:-release}/$ORCA_PHASE#$ORCA_ATTEMPT] $*" >&2; }

case $step in
preflight) # root analyze: the tools are there and the run directory is writable
    for tool in cksum wc sed tr sort; do
        command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 127; }
    done
    mkdir -p "$art" "$live"
    say "releasing $version to ${RELEASE_CHANNEL:-?}"
    printf '{"version":"%s","channel":"%s"}\n' "$version" "${RELEASE_CHANNEL:-}"
    ;;

build) # build-api, build-web: sources into a bundle with a checksum
    component=${2:?component}
    if [ "${SIMULATE_FLAKE:-0}" = 1 ] && [ "$ORCA_ATTEMPT" = 1 ]; then
        echo "registry.example: ETIMEDOUT fetching dependencies (simulated flake; the retry will pass)" >&2
        exit 75
    fi
    src=$ORCA_RUN_DIR/build/$component
    mkdir -p "$src" "$art"
    i=1
    while [ "$i" -le 5 ]; do
        printf '%s module %d of %s %s\n' "$component" "$i" "$component" "$version" >"$src/module$i.txt"
        i=$((i + 1))
    done
    bundle=$art/$component-$version.bundle
    cat "$src"/module*.txt >"$bundle"
    sum=$(cksum <"$bundle" | cut -d' ' -f1)
    bytes=$(wc -c <"$bundle" | tr -d ' ')
    echo "$sum" >"$bundle.cksum"
    say "built $bundle ($bytes bytes)"
    printf '{"component":"%s","bundle":"%s","bytes":%s,"cksum":%s}\n' \
        "$component" "artifacts/$component-$version.bundle" "$bytes" "$sum"
    ;;

test) # every bundle still matches its checksum and holds its five modules
    n=0
    for bundle in "$art"/*.bundle; do
        [ -f "$bundle" ] || { echo "no bundles in $art" >&2; exit 1; }
        want=$(cat "$bundle.cksum")
        got=$(cksum <"$bundle" | cut -d' ' -f1)
        [ "$want" = "$got" ] || { echo "checksum mismatch: $bundle" >&2; exit 1; }
        [ "$(wc -l <"$bundle" | tr -d ' ')" = 5 ] || { echo "wrong module count: $bundle" >&2; exit 1; }
        n=$((n + 1))
    done
    say "$n bundles verified"
    printf '{"bundles_verified":%d}\n' "$n"
    ;;

check-bundles) # deploy analyze: is there something to deploy?
    ls "$art"/*.bundle >/dev/null
    printf '{"ready":true,"bundles":%d}\n' "$(ls "$art"/*.bundle | wc -l | tr -d ' ')"
    ;;

inventory) # deploy research: what runs where now
    current=1.3.2
    [ -f "$live/version" ] && current=$(cat "$live/version")
    printf '{"current":"%s","target":"%s","regions":["canary","eu-west","us-east"]}\n' "$current" "$version"
    ;;

deploy) # deploy.<region>
    region=${2:?region}
    mkdir -p "$live"
    sleep 0.2
    echo "$version" >"$live/$region"
    say "$region now runs $version"
    printf '{"region":"%s","version":"%s"}\n' "$region" "$version"
    ;;

rollback) # compensation of deploy.<region>, or of the whole deploy with `all`
    region=${2:?region}
    echo "$(date -u +%H:%M:%S) rollback $region" >>"$ORCA_RUN_DIR/rollbacks.log"
    if [ "$region" = all ]; then rm -f "$live/version"; else rm -f "$live/$region"; fi
    say "rolled back $region"
    ;;

summarize-deploy) # deploy integrate: the regions' outcomes from the stdin document
    doc=$(cat)
    regions=$(printf '%s' "$doc" | sed 's/.*"children"://' \
        | grep -o '"[a-z-]*":{"status":"succeeded"' | cut -d'"' -f2 | tr '\n' ' ')
    echo "$version" >"$live/version"
    set -- $regions
    list=$(printf '"%s",' "$@")
    printf '{"version":"%s","regions":[%s]}\n' "$version" "${list%,}"
    ;;

summarize) # root integrate: one line per release for people, the summary as the output
    doc=$(cat)
    tests=$(printf '%s' "$doc" | grep -o '"bundles_verified":[0-9]*' | cut -d: -f2)
    regions=$(printf '%s' "$doc" | grep -o '"regions":\[[^]]*\]' | tail -n 1 | cut -d: -f2)
    bundles=$(cd "$art" && ls *.bundle | sed 's/.*/"&"/' | tr '\n' ',' | sed 's/,$//')
    echo "$version ${RELEASE_CHANNEL:-} $regions" >>"$ORCA_RUN_DIR/RELEASES"
    printf '{"version":"%s","bundles":[%s],"bundles_verified":%s,"regions":%s}\n' \
        "$version" "$bundles" "${tests:-0}" "${regions:-[]}"
    ;;

*)
    echo "release.sh: unknown step $step" >&2
    exit 2
    ;;
esac
