#!/usr/bin/env bash
# `img convert` into and out of Ceph rbd, ours against qemu-img's rbd driver (Debian's qemu-block-extra), in
# one run on the same throwaway cluster (scripts/ceph-cluster.sh: one mon, one memstore OSD, 127.0.0.1).
# The source is half random data, half zeros, so sparseness counts too. Every result is checked with
# qemu-img compare. Times are wall seconds of the whole process, best of $RUNS (default 3); the goal is a
# ratio (ours / qemu-img) of at most 1.0.
# Usage: bench/rbd-bench.sh [SIZE_MIB]   (default 256). Override the binary with SB=/path/to/sharpblock.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib=${1:-256}
runs=${RUNS:-3}
work=$(mktemp -d /tmp/rbd-bench.XXXXXX)
trap 'bash scripts/ceph-cluster.sh stop "$work/ceph" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

if [[ -n "${SB:-}" ]]; then
  read -ra sharpblock <<< "$SB"; kind="given"
elif dotnet publish src/SharpBlock.Cli -c Release -o "$work/bin" >"$work/publish.log" 2>&1 && [ -x "$work/bin/sharpblock" ]; then
  sharpblock=("$work/bin/sharpblock"); kind="NativeAOT"
else
  dotnet build src/SharpBlock.Cli -c Release -o "$work/bin" >"$work/build.log" 2>&1
  sharpblock=(dotnet "$work/bin/sharpblock.dll"); kind="JIT (AOT publish failed)"
fi

bash scripts/ceph-cluster.sh start "$work/ceph" >/dev/null
conf="$work/ceph/ceph.conf"
rbd() { timeout 120 /usr/bin/rbd -c "$conf" "$@"; }
name() { echo "rbd:rbd/$1:conf=$conf"; }

# Half random, half zeros, in 1 MiB stripes.
python3 - "$work/src.raw" "$size_mib" <<'PY'
import os, sys
with open(sys.argv[1], 'wb') as f:
    for i in range(int(sys.argv[2])):
        f.write(os.urandom(1 << 20) if i % 2 == 0 else bytes(1 << 20))
PY

now() { date +%s.%N; }
best_into() { # best wall time of $runs conversions into a fresh rbd image, by TOOL (qemu|ours)
  local tool=$1 b="" s e
  for _ in $(seq "$runs"); do
    rbd rm -q "rbd/$tool" >/dev/null 2>&1 || true
    s=$(now)
    if [ "$tool" = qemu ]; then qemu-img convert -f raw -O raw "$work/src.raw" "$(name qemu)"
    else "${sharpblock[@]}" img convert -f raw -O raw "$work/src.raw" "$(name ours)"; fi
    e=$(now)
    b=$(python3 -c "t=$e-$s; b='$b'; print(t if not b else min(t, float(b)))")
  done
  qemu-img compare -q -f raw -F raw "$work/src.raw" "$(name "$tool")"
  echo "$b"
}
best_out_of() { # best wall time of $runs conversions of rbd image "qemu" into a local raw file, by TOOL
  local tool=$1 b="" s e
  for _ in $(seq "$runs"); do
    rm -f "$work/out.raw"
    s=$(now)
    if [ "$tool" = qemu ]; then qemu-img convert -f raw -O raw "$(name qemu)" "$work/out.raw"
    else "${sharpblock[@]}" img convert -f raw -O raw "$(name qemu)" "$work/out.raw"; fi
    e=$(now)
    b=$(python3 -c "t=$e-$s; b='$b'; print(t if not b else min(t, float(b)))")
  done
  qemu-img compare -q -f raw -F raw "$work/src.raw" "$work/out.raw"
  echo "$b"
}

echo "rbd convert: ${size_mib} MiB raw (half data, half zeros), best of $runs, sharpblock $kind"
echo "$(nproc) CPUs, $(uname -r), $(qemu-img --version | head -1)"
echo
echo "| operation | SharpBlock | qemu-img 7.2 | ratio |"
echo "|---|---|---|---|"
qi=$(best_into qemu); si=$(best_into ours)
printf '| img convert raw file -> rbd | %.2f s | %.2f s | %.2f |\n' "$si" "$qi" "$(python3 -c "print($si/$qi)")"
qo=$(best_out_of qemu); so=$(best_out_of ours)
printf '| img convert rbd -> raw file | %.2f s | %.2f s | %.2f |\n' "$so" "$qo" "$(python3 -c "print($so/$qo)")"
