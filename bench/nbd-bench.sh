#!/usr/bin/env bash
# NBD throughput, ours against qemu-nbd, in one run on the same machine and the same images:
#   nbdcopy reading a whole export (to null:), nbdcopy writing a whole export, qemu-img convert from
#   the export to a raw file. The image is half data, half hole, so hole handling counts too.
# Usage: bench/nbd-bench.sh [SIZE_MIB]   (default 512). Prints a Markdown table for docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib=${1:-512}
runs=${RUNS:-3}
work=$(mktemp -d /tmp/nbd-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The native (NativeAOT) build is what users run; fall back to the JIT build if AOT tooling is missing.
if dotnet publish src/SharpBlock.Cli -c Release -o "$work/bin" >"$work/publish.log" 2>&1 && [ -x "$work/bin/sharpblock" ]; then
  sharpblock=("$work/bin/sharpblock"); kind="NativeAOT"
else
  dotnet build src/SharpBlock.Cli -c Release -o "$work/bin" >"$work/build.log" 2>&1
  sharpblock=(dotnet "$work/bin/sharpblock.dll"); kind="JIT (AOT publish failed)"
fi

for name in ours qemu; do
  qemu-img create -q -f raw "$work/$name.raw" "${size_mib}M"
  qemu-io -f raw -c "write -P 0x5a 0 $((size_mib / 2))M" "$work/$name.raw" >/dev/null
done
head -c "$((size_mib << 20))" /dev/urandom >"$work/src.raw"

"${sharpblock[@]}" daemon --qmp "unix:$work/qmp.sock" \
  --blockdev "driver=raw,id=disk0,file.driver=file,file.filename=$work/ours.raw" \
  --nbd-server "addr.type=unix,addr.path=$work/ours.sock" \
  --export "type=nbd,id=e0,device=disk0,writable=on" >"$work/daemon.log" 2>&1 &
pids+=($!)
qemu-nbd -k "$work/qemu.sock" -f raw -t -x disk0 --shared=16 --cache=writeback "$work/qemu.raw" >"$work/qemu-nbd.log" 2>&1 &
pids+=($!)
url() { echo "nbd+unix:///disk0?socket=$work/$1.sock"; }

# The socket file appears before the server listens; wait until a client is really served.
for s in ours qemu; do
  for _ in $(seq 300); do nbdinfo --size "$(url "$s")" >/dev/null 2>&1 && break; sleep 0.1; done
done

# Best of $runs wall-clock seconds for a command.
best() {
  local best=""
  for _ in $(seq "$runs"); do
    local t0 t1 d
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
    d=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$d < $best" | bc -l)" = 1 ]; then best=$d; fi
  done
  printf '%.2f' "$best"
}

mibs() { printf '%.0f' "$(echo "$size_mib / $1" | bc -l)"; }

row() {
  local what=$1; shift
  local a b
  a=$(best "$@" ours)
  b=$(best "$@" qemu)
  printf '| %s | %s s (%s MiB/s) | %s s (%s MiB/s) |\n' "$what" "$a" "$(mibs "$a")" "$b" "$(mibs "$b")"
}

read_null() { nbdcopy "$(url "$1")" null:; }
read_null_4() { nbdcopy --connections=4 --requests=64 "$(url "$1")" null:; }
write_all() { nbdcopy "$work/src.raw" "$(url "$1")"; }
convert_out() { rm -f "$work/out.raw"; qemu-img convert -f raw -O raw "$(url "$1")" "$work/out.raw"; }
convert_in() { qemu-img convert -n -f raw -O raw "$work/src.raw" "$(url "$1")"; }

echo "NBD benchmark: ${size_mib} MiB export (half data, half hole), best of $runs, sharpblock $kind"
echo "$(nproc) CPUs, $(uname -r), $(qemu-nbd --version | head -1), $(nbdcopy --version | head -1)"
echo
echo "| operation | SharpBlock | qemu-nbd 7.2 |"
echo "|---|---|---|"
row "nbdcopy export -> null: (1 connection)" read_null
row "nbdcopy export -> null: (4 connections, 64 requests)" read_null_4
row "nbdcopy file -> export (random data)" write_all
row "qemu-img convert export -> raw file" convert_out
row "qemu-img convert raw file -> export" convert_in
