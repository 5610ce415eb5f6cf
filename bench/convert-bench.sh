#!/usr/bin/env bash
# `qemu-img convert` against `sharpblock img convert`, in one run, on the same source images and with the
# same options (-m left at its default of 8 for both): raw->qcow2, qcow2->raw, qcow2->qcow2 -c and
# raw->raw. The source is mixed like a real disk: pieces of 1-4 MiB that are random (incompressible),
# text-like (compressible) or zero, a third each; half of the zero pieces are holes in the raw file and
# half are written zeros, so both block status and zero detection are exercised. Every output of both
# tools is checked with qemu-img compare. Times are wall seconds of the whole process (start-up and the
# final flush included), best of $RUNS.
# Usage: bench/convert-bench.sh [SIZE_MIB]   (default 512). Prints a Markdown table for docs/performance.md.
# Override the binary with SB=/path/to/sharpblock.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib=${1:-512}
runs=${RUNS:-3}
work=$(mktemp -d /tmp/convert-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

if [[ -n "${SB:-}" ]]; then
  sharpblock=("$SB"); kind="given"
elif dotnet publish src/SharpBlock.Cli -c Release -o "$work/bin" >"$work/publish.log" 2>&1 && [ -x "$work/bin/sharpblock" ]; then
  sharpblock=("$work/bin/sharpblock"); kind="NativeAOT"
else
  dotnet build src/SharpBlock.Cli -c Release -o "$work/bin" >"$work/build.log" 2>&1
  sharpblock=(dotnet "$work/bin/sharpblock.dll"); kind="JIT (AOT publish failed)"
fi

python3 - "$work/src.raw" "$size_mib" <<'PY'
import os, random, sys
path, size = sys.argv[1], int(sys.argv[2]) << 20
rng = random.Random(42)
words = [b"block", b"cluster", b"refcount", b"qcow2", b"sector", b"backing", b"the", b"of", b"a", b"image",
         b"write", b"read", b"zero", b"offset", b"table", b"0x1f3a", b"1024", b"\n"]
text = b" ".join(rng.choice(words) for _ in range(1 << 20))
with open(path, "wb") as f:
    f.truncate(size)
    off, kind = 0, 0
    while off < size:
        n = min(size - off, rng.randint(1, 4) << 20)
        f.seek(off)
        if kind == 0:
            f.write(os.urandom(n))
        elif kind == 1:
            start = rng.randrange(0, len(text) - n) if len(text) > n else 0
            f.write((text * (n // len(text) + 1))[start:start + n])
        elif (off >> 20) % 2 == 0:
            f.write(bytes(n))          # written zeros: data to block status, zeros to the reader
        # else: a hole
        off += n
        kind = (kind + 1) % 3
PY
qemu-img convert -f raw -O qcow2 "$work/src.raw" "$work/src.qcow2"

# Best of $runs wall-clock seconds; the page cache is written back before each run so that one run's dirty
# pages do not slow the next.
best() {
  local out=$1; shift
  local best=""
  for _ in $(seq "$runs"); do
    rm -f "$out"; sync
    local t0 t1 d
    t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N)
    d=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$d < $best" | bc -l)" = 1 ]; then best=$d; fi
  done
  printf '%.2f' "$best"
}

echo "Source: ${size_mib} MiB, sharpblock build: $kind, best of $runs, $(date -u +%Y-%m-%d)"
echo
echo "| convert | qemu-img 7.2 (s) | sharpblock (s) | ratio (ours/qemu) | output sizes (qemu / ours) |"
echo "|---|---|---|---|---|"
while IFS='|' read -r label in fmt_in fmt_out extra; do
  q=$(best "$work/q.out" qemu-img convert -f "$fmt_in" -O "$fmt_out" $extra "$work/$in" "$work/q.out")
  s=$(best "$work/s.out" "${sharpblock[@]}" img convert -f "$fmt_in" -O "$fmt_out" $extra "$work/$in" "$work/s.out")
  qemu-img compare -q -f "$fmt_in" -F "$fmt_out" "$work/$in" "$work/q.out"
  qemu-img compare -q -f "$fmt_in" -F "$fmt_out" "$work/$in" "$work/s.out"
  if [[ $fmt_out == qcow2 ]]; then
    qemu-img check -q "$work/s.out"
  fi
  qs=$(du -m "$work/q.out" | cut -f1)
  ss=$(du -m "$work/s.out" | cut -f1)
  echo "| $label | $q | $s | $(printf '%.2f' "$(echo "$s / $q" | bc -l)") | ${qs} / ${ss} MiB |"
done <<'LIST'
raw -> qcow2|src.raw|raw|qcow2|
qcow2 -> raw|src.qcow2|qcow2|raw|
qcow2 -> qcow2 -c (compressed)|src.qcow2|qcow2|qcow2|-c
raw -> raw|src.raw|raw|raw|
LIST
