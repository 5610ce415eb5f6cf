#!/usr/bin/env bash
# `qemu-img convert` against `sharpblock img convert`, in one run, on the same source images and with the
# same options (-m left at its default of 8 for both): raw->qcow2, qcow2->raw, qcow2->qcow2 -c, raw->raw,
# and raw to and from vmdk, vhdx and vdi. The source is mixed like a real disk: pieces of 1-4 MiB that are random (incompressible),
# text-like (compressible) or zero, a third each; half of the zero pieces are holes in the raw file and
# half are written zeros, so both block status and zero detection are exercised. Every output of both
# tools is checked with qemu-img compare. Times are wall seconds of the whole process (start-up included),
# best of $RUNS (default 5), and CPU seconds. Both tools leave the target unflushed by default (-t unsafe).
# Usage: bench/convert-bench.sh [SIZE_MIB]   (default 512). Prints a Markdown table for docs/performance.md.
# Override the binary with SB=/path/to/sharpblock.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib=${1:-512}
runs=${RUNS:-5}
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
for f in vmdk vhdx vdi; do qemu-img convert -f raw -O "$f" "$work/src.raw" "$work/src.$f"; done

# Best of $runs wall-clock seconds, and the least CPU time (user + system) of the same runs, which the
# other work on a shared machine disturbs less; the page cache is written back before each run so that one
# run's dirty pages do not slow the next.
best() { # output-file command...
  local out=$1; shift
  local best="" cpu=""
  for _ in $(seq "$runs"); do
    rm -f "$out"; sync
    /usr/bin/time -f '%e %U %S' -o "$work/time" "$@" >/dev/null
    local e u s c
    read -r e u s <"$work/time"
    c=$(echo "$u + $s" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$e < $best" | bc -l)" = 1 ]; then best=$e; fi
    if [ -z "$cpu" ] || [ "$(echo "$c < $cpu" | bc -l)" = 1 ]; then cpu=$c; fi
  done
  printf '%.2f %.2f\n' "$best" "$cpu"
}

echo "Source: ${size_mib} MiB, sharpblock build: $kind, best of $runs, $(date -u +%Y-%m-%d)"
echo
echo "| convert | qemu-img 7.2 wall (s) | sharpblock wall (s) | ratio | qemu-img CPU (s) | sharpblock CPU (s) | output sizes (qemu / ours) |"
echo "|---|---|---|---|---|---|---|"
while IFS='|' read -r label in fmt_in fmt_out extra; do
  read -r q qc < <(best "$work/q.out" qemu-img convert -f "$fmt_in" -O "$fmt_out" $extra "$work/$in" "$work/q.out")
  read -r s sc < <(best "$work/s.out" "${sharpblock[@]}" img convert -f "$fmt_in" -O "$fmt_out" $extra "$work/$in" "$work/s.out")
  qemu-img compare -q -f "$fmt_in" -F "$fmt_out" "$work/$in" "$work/q.out"
  qemu-img compare -q -f "$fmt_in" -F "$fmt_out" "$work/$in" "$work/s.out"
  if [[ $fmt_out =~ ^(qcow2|vmdk|vhdx|vdi)$ ]]; then
    qemu-img check -q -f "$fmt_out" "$work/s.out"
  fi
  qs=$(du -m "$work/q.out" | cut -f1)
  ss=$(du -m "$work/s.out" | cut -f1)
  echo "| $label | $q | $s | $(printf '%.2f' "$(echo "$s / $q" | bc -l)") | $qc | $sc | ${qs} / ${ss} MiB |"
done <<'LIST'
raw -> qcow2|src.raw|raw|qcow2|
qcow2 -> raw|src.qcow2|qcow2|raw|
qcow2 -> qcow2 -c (compressed)|src.qcow2|qcow2|qcow2|-c
raw -> raw|src.raw|raw|raw|
raw -> vmdk|src.raw|raw|vmdk|
vmdk -> raw|src.vmdk|vmdk|raw|
raw -> vhdx|src.raw|raw|vhdx|
vhdx -> raw|src.vhdx|vhdx|raw|
raw -> vdi|src.raw|raw|vdi|
vdi -> raw|src.vdi|vdi|raw|
LIST
