#!/bin/sh
# The steps of machines/fanout.ron: `sh machines/scripts/fanout.sh STEP [ARG]`.
#
# orca runs it from the directory `orca run` was started in (the workflow sets no `cwd`), so
# run the workflow from the repository root. It writes only under $ORCA_RUN_DIR/fanout and
# prints each step's result as JSON on stdout (the phase output). The JSON documents orca
# sends on stdin are read with sed and grep: no jq needed, only sh and coreutils.
set -eu
export LC_ALL=C   # the same sort order everywhere
: "${ORCA_RUN_DIR:?run me through orca: orca run machines/fanout.ron}"
work=$ORCA_RUN_DIR/fanout
step=${1:?usage: fanout.sh STEP [ARG]}

case $step in
prepare) # analyze: take a copy of the input, count it whole (to check the merge against)
    src=${FANOUT_SOURCE:?set FANOUT_SOURCE to the text file to count}
    mkdir -p "$work/chunks" "$work/counts"
    cp "$src" "$work/input.txt"
    set -- $(wc -l -w -c <"$work/input.txt")
    printf '{"source":"%s","total_lines":%s,"total_words":%s,"total_bytes":%s}\n' "$src" "$1" "$2" "$3"
    ;;

split) # decompose: one chunk file per subtask, and the subtasks as JSON on stdout
    # The number of chunks comes from the operation's `input` in the stdin document.
    n=$(sed -n 's/.*"input":{"chunks":\([0-9][0-9]*\)}.*/\1/p')
    n=${n:-2}
    (cd "$work/chunks" && split -d -n "l/$n" ../input.txt part-)
    sep='{'
    for f in "$work"/chunks/part-*; do
        id=${f##*/part-}
        printf '%s"count-%s":{"description":"count chunk %s","run":{"Shell":"sh machines/scripts/fanout.sh count %s"},"input":{"chunk":"chunks/part-%s"}}' \
            "$sep" "$id" "$id" "$id" "$id"
        sep=','
    done
    echo '}'
    ;;

count) # count-NN: lines, words, bytes of one chunk (the file named by its `input`)
    id=${2:?chunk id}
    chunk=$(sed -n 's/.*"input":{"chunk":"\([^"]*\)"}.*/\1/p')
    f=$work/${chunk:?no chunk in the input}
    # Word frequencies go to a file for the merge; the counts are the phase output.
    tr -cs 'A-Za-z' '\n' <"$f" | tr 'A-Z' 'a-z' | grep . | sort | uniq -c >"$work/counts/$id.txt" || true
    set -- $(wc -l -w -c <"$f")
    printf '{"chunk":"%s","lines":%s,"words":%s,"bytes":%s}\n' "$id" "$1" "$2" "$3"
    ;;

merge) # integrate: add up children.<name>.output, check against the whole, top words;
       # the result is the phase output (the run's output) and $ORCA_RUN_DIR/fanout/result.json
    doc=$(cat)
    # "count-00":{"status":"succeeded","output":{"chunk":"00","lines":8,"words":120,"bytes":620}}
    sums=$(printf '%s\n' "$doc" | grep -o '"output":{"chunk":"[0-9]*","lines":[0-9]*,"words":[0-9]*,"bytes":[0-9]*}' \
        | awk -F'[:,}]' '{ n++; l += $5; w += $7; b += $9 } END { printf "%d %d %d %d", n, l, w, b }')
    set -- $sums
    chunks=$1 lines=$2 words=$3 bytes=$4
    total() { printf '%s\n' "$doc" | grep -o "\"total_$1\":[0-9]*" | cut -d: -f2; }
    whole=false
    if [ "$lines" = "$(total lines)" ] && [ "$words" = "$(total words)" ] && [ "$bytes" = "$(total bytes)" ]; then
        whole=true
    fi
    top=$(cat "$work"/counts/*.txt | awk '{ c[$2] += $1 } END { for (w in c) print c[w], w }' \
        | sort -k1,1nr -k2,2 | head -n 5 | awk '{ printf "%s{\"word\":\"%s\",\"count\":%d}", (NR > 1 ? "," : ""), $2, $1 }')
    printf '{"chunks":%d,"lines":%d,"words":%d,"bytes":%d,"matches_whole_file":%s,"top_words":[%s]}\n' \
        "$chunks" "$lines" "$words" "$bytes" "$whole" "$top" | tee "$work/result.json"
    [ "$whole" = true ] || { echo "the chunks do not add up to the whole file" >&2; exit 1; }
    ;;

*)
    echo "fanout.sh: unknown step $step" >&2
    exit 2
    ;;
esac
