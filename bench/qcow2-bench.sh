#!/usr/bin/env bash
# Runs qemu-img bench and sharpblock img bench side by side on identical fresh qcow2 images and prints a
# Markdown table (paste it into docs/performance.md). Uses the NativeAOT build when it exists:
#   dotnet publish src/SharpBlock.Cli -c Release -o out/native
# Override with SB=/path/to/sharpblock. Image size and counts are small so it runs in well under a minute.
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

run() { # tool label args...
    local tool=$1; shift
    local out
    if [[ $tool == qemu ]]; then
        out=$(qemu-img bench "$@")
    else
        out=$($SB img bench "$@")
    fi
    sed -n 's/Run completed in \([0-9.]*\) seconds./\1/p' <<<"$out"
}

echo "| workload | qemu-img 7.2 (s) | sharpblock (s) |"
echo "|---|---|---|"
while IFS='|' read -r label prep args; do
    for t in qemu sb; do
        qemu-img create -q -f qcow2 "$work/$t.qcow2" "$size"
        if [[ -n $prep ]]; then
            qemu-img bench $prep "$work/$t.qcow2" >/dev/null
        fi
    done
    q=$(run qemu $args "$work/qemu.qcow2")
    s=$(run sb $args "$work/sb.qcow2")
    echo "| $label | $q | $s |"
done <<'LIST'
allocating write 64k x 8192, depth 16||-w -c 8192 -d 16 -s 64k
allocating write 4k x 32768 (partial clusters), depth 16||-w -c 32768 -d 16 -s 4k -S 64k
rewrite 4k x 100000, depth 64|-w -c 8192 -s 64k|-w -c 100000 -d 64 -s 4k
read 4k x 100000, depth 64|-w -c 8192 -s 64k|-c 100000 -d 64 -s 4k
read 64k x 20000, depth 16|-w -c 8192 -s 64k|-c 20000 -d 16 -s 64k
read unallocated 64k x 20000, depth 16||-c 20000 -d 16 -s 64k
LIST
