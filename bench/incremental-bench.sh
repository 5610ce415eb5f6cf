#!/usr/bin/env bash
# Incremental backup, ours against qemu-storage-daemon 7.2, in one run on the same machine and images:
# a qcow2 disk of SIZE_MIB with a dirty bitmap, DIRTY_PCT percent of its clusters written through an NBD
# export, then drive-backup sync=incremental (mode=existing) into a qcow2 overlay of the full backup; the time is from
# the command to BLOCK_JOB_COMPLETED. Each result is checked: qemu-img compare of the chain with the disk.
# Usage: bench/incremental-bench.sh [SIZE_MIB] [DIRTY_PCT]   (default 1024 and 5). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib=${1:-1024}
dirty_pct=${2:-5}
runs=${RUNS:-3}
work=$(mktemp -d /tmp/incr-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if dotnet publish src/SharpBlock.Cli -c Release -o "$work/bin" >"$work/publish.log" 2>&1 && [ -x "$work/bin/sharpblock" ]; then
  sharpblock=("$work/bin/sharpblock"); kind="NativeAOT"
else
  dotnet build src/SharpBlock.Cli -c Release -o "$work/bin" >"$work/build.log" 2>&1
  sharpblock=(dotnet "$work/bin/sharpblock.dll"); kind="JIT (AOT publish failed)"
fi

# A small QMP client: sends each command and waits for its reply; "wait EVENT" waits for an event;
# "time" prints the seconds since the last "mark".
cat >"$work/qmp.py" <<'PY'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile('rw')
def msg():
    while True:
        line = f.readline()
        if not line: sys.exit("connection closed")
        if line.strip(): return json.loads(line)
msg()
mark = time.monotonic()
for raw in [sys.argv[2]] + sys.stdin.read().splitlines():
    cmd = raw.strip()
    if not cmd: continue
    if cmd == 'mark': mark = time.monotonic(); continue
    if cmd == 'time': print('%.3f' % (time.monotonic() - mark)); continue
    if cmd.startswith('wait '):
        while True:
            m = msg()
            if m.get('event') == cmd[5:]:
                if m['data'].get('error'): sys.exit(m['data']['error'])
                break
        continue
    f.write(cmd + '\n'); f.flush()
    while True:
        m = msg()
        if 'error' in m: sys.exit(cmd + ': ' + m['error']['desc'])
        if 'return' in m: break
PY
qmp() { python3 "$work/qmp.py" "$work/$1.qmp" '{"execute":"qmp_capabilities"}'; }

clusters=$((size_mib * 16))
step=$((100 / dirty_pct))
# One write per dirtied 64 KiB cluster, spread evenly over the disk.
for ((c = 0; c < clusters; c += step)); do echo "write -P 0x33 $((c * 64))k 64k"; done >"$work/dirty.qemu-io"

one_round() { # $1: ours|qemu
  local n=$1 d="$work/$1"
  rm -rf "$d"; mkdir -p "$d"
  qemu-img create -q -f qcow2 "$d/disk.qcow2" "${size_mib}M"
  qemu-io -c "write -P 0x5a 0 ${size_mib}M" "$d/disk.qcow2" >/dev/null
  cp "$d/disk.qcow2" "$d/full.qcow2"
  qemu-img create -q -f qcow2 -b "$d/full.qcow2" -F qcow2 "$d/inc.qcow2"
  # Our drive-backup takes a device (2.1's form); qemu-storage-daemon has only nodes, which 7.2 also takes.
  local name_key=node-name
  [ "$n" = ours ] && name_key=id
  local args=(--chardev "socket,id=m,path=$work/$n.qmp,server=on,wait=off" --monitor chardev=m
    --blockdev "driver=qcow2,$name_key=disk0,file.driver=file,file.filename=$d/disk.qcow2"
    --nbd-server "addr.type=unix,addr.path=$work/$n.sock")
  rm -f "$work/$n.qmp" "$work/$n.sock"
  if [ "$n" = ours ]; then "${sharpblock[@]}" daemon "${args[@]}" >"$work/$n.log" 2>&1 &
  else qemu-storage-daemon "${args[@]}" >"$work/$n.log" 2>&1 &
  fi
  local pid=$!; pids+=($pid)
  for _ in $(seq 300); do [ -S "$work/$n.qmp" ] && [ -S "$work/$n.sock" ] && break; sleep 0.1; done
  qmp "$n" <<Q
{"execute":"block-dirty-bitmap-add","arguments":{"node":"disk0","name":"b0"}}
{"execute":"block-export-add","arguments":{"type":"nbd","id":"e0","node-name":"disk0","writable":true}}
Q
  qemu-io -f raw "nbd+unix:///disk0?socket=$work/$n.sock" <"$work/dirty.qemu-io" >/dev/null
  local t
  t=$(qmp "$n" <<Q
{"execute":"block-export-del","arguments":{"id":"e0"}}
mark
{"execute":"drive-backup","arguments":{"job-id":"j0","device":"disk0","target":"$d/inc.qcow2","format":"qcow2","mode":"existing","sync":"incremental","bitmap":"b0"}}
wait BLOCK_JOB_COMPLETED
time
Q
)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  # The chain must be the disk, and the overlay hold only the dirty clusters.
  qemu-img compare -q "$d/inc.qcow2" "$d/disk.qcow2" || { echo "$n: incremental chain differs from the disk" >&2; exit 1; }
  echo "$t $(du -k "$d/inc.qcow2" | cut -f1)"
}

best() { # best time of $runs rounds, and the overlay's size in KiB
  local best="" kib=""
  for _ in $(seq "$runs"); do
    read -r t k < <(one_round "$1")
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; kib=$k; fi
  done
  echo "$best $kib"
}

read -r ours ours_kib < <(best ours)
read -r qemu qemu_kib < <(best qemu)
echo "Incremental backup: ${size_mib} MiB qcow2, ${dirty_pct}% of clusters dirty, best of $runs, sharpblock $kind"
echo "$(nproc) CPUs, $(uname -r), $(qemu-storage-daemon --version | head -1)"
echo
echo "| operation | SharpBlock | qemu-storage-daemon 7.2 | ratio |"
echo "|---|---|---|---|"
printf '| drive-backup sync=incremental to BLOCK_JOB_COMPLETED | %s s (overlay %s MiB) | %s s (overlay %s MiB) | %.2f |\n' \
  "$ours" "$((ours_kib / 1024))" "$qemu" "$((qemu_kib / 1024))" "$(echo "$ours / $qemu" | bc -l)"
