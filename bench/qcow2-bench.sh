#!/usr/bin/env bash
# Runs qemu-img bench and sharpblock img bench side by side on identical fresh qcow2 images and prints a
# Markdown table (paste it into docs/performance.md). Uses the NativeAOT build when it exists:
#   dotnet publish src/SharpBlock.Cli -c Release -o out/native
# Override with SB=/path/to/sharpblock, the number of runs with RUNS (best of 3 by default). Both tools time
# the requests only, not the final flush (qemu-img bench flushes when it closes the image, after its clock).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${SB:-}" ]]; then
    if [[ -x out/native/sharpblock ]]; then
        SB=out/native/sharpblock
    else
        dotnet build -c Release src/SharpBlock.Cli >/dev/null
        SB="dotnet src/SharpBlock.Cli/bin/Release/net10.0/sharpblock.dll"
    fi
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
size=${SIZE:-512M}

runs=${RUNS:-3}

run() { # tool args...
    local tool=$1; shift
    local out
    if [[ $tool == qemu ]]; then
        out=$(qemu-img bench "$@")
    else
        out=$($SB img bench "$@")
    fi
    sed -n 's/Run completed in \([0-9.]*\) seconds./\1/p' <<<"$out"
}

# Best of $runs, each on a freshly created (and, for read/rewrite rows, freshly filled) image; dirty pages
# are written back before each timed run so one run's writeback does not land in the next one's time.
best() { # tool prep args...
    local tool=$1 prep=$2; shift 2
    local best=""
    for _ in $(seq "$runs"); do
        rm -f "$work/$tool.qcow2"
        qemu-img create -q -f qcow2 "$work/$tool.qcow2" "$size"
        if [[ -n $prep ]]; then
            qemu-img bench $prep "$work/$tool.qcow2" >/dev/null
        fi
        sync
        local t
        t=$(run "$tool" "$@" "$work/$tool.qcow2")
        if [[ -z $best ]] || [[ $(echo "$t < $best" | bc -l) == 1 ]]; then best=$t; fi
    done
    echo "$best"
}

echo "| workload | qemu-img 7.2 (s) | sharpblock (s) | ratio (ours/qemu) |"
echo "|---|---|---|---|"
while IFS='|' read -r label prep args; do
    q=$(best qemu "$prep" $args)
    s=$(best sb "$prep" $args)
    echo "| $label | $q | $s | $(printf '%.2f' "$(echo "$s / $q" | bc -l)") |"
done <<'LIST'
allocating write 64k x 8192, depth 16||-w -c 8192 -d 16 -s 64k
allocating write 4k x 32768 (partial clusters), depth 16||-w -c 32768 -d 16 -s 4k -S 64k
allocating write 4k x 32768 (sequential), depth 32||-w -c 32768 -d 32 -s 4k
rewrite 4k x 100000, depth 64|-w -c 8192 -s 64k|-w -c 100000 -d 64 -s 4k
read 4k x 100000, depth 64|-w -c 8192 -s 64k|-c 100000 -d 64 -s 4k
read 4k x 100000, depth 32|-w -c 8192 -s 64k|-c 100000 -d 32 -s 4k
read 64k x 20000, depth 16|-w -c 8192 -s 64k|-c 20000 -d 16 -s 64k
read unallocated 64k x 20000, depth 16||-c 20000 -d 16 -s 64k
LIST
