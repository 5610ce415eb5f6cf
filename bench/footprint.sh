#!/usr/bin/env bash
# Footprint, ours against QEMU's tools, in one run on the same machine and the same images:
#   1. resident memory of the daemon idle with one raw node (sharpblock daemon vs qemu-storage-daemon),
#   2. adding 100 qcow2 nodes (each its own file) over QMP: wall time and resident memory afterwards,
#   3. `img info` and `img check` of a small qcow2: wall time and peak RSS (sharpblock img vs qemu-img).
# Usage: bench/footprint.sh   (RUNS=N repeats 3. N times and takes the median; default 10)
# Prints a Markdown table for docs/performance.md. Needs python3 (the QMP client) and GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-10}
work=$(mktemp -d /tmp/footprint.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The native (NativeAOT) build is what users run.
dotnet publish src/SharpBlock.Cli -c Release -o "$work/bin" >"$work/publish.log" 2>&1
sb="$work/bin/sharpblock"
[ -x "$sb" ] || { echo "NativeAOT publish failed, see $work/publish.log" >&2; exit 1; }

# Each daemon gets files of its own: both take write locks.
for who in ours qsd; do
  qemu-img create -q -f raw "$work/idle-$who.raw" 64M
  mkdir "$work/many-$who"
  for i in $(seq 0 99); do qemu-img create -q -f qcow2 "$work/many-$who/d$i.qcow2" 64M; done
done
qemu-img create -q -f qcow2 "$work/small.qcow2" 256M
qemu-io -f qcow2 -c "write -P 0x11 0 8M" -c "write -P 0x22 100M 4M" "$work/small.qcow2" >/dev/null

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# The QMP client: capabilities, then the given commands one at a time; prints the wall time of the commands.
cat >"$work/qmp.py" <<'PY'
import json, socket, sys, time
sock = socket.socket(socket.AF_UNIX)
for _ in range(300):
    try:
        sock.connect(sys.argv[1]); break
    except OSError:
        time.sleep(0.05)
f = sock.makefile("rw")
def cmd(obj):
    f.write(json.dumps(obj) + "\n"); f.flush()
    while True:
        r = json.loads(f.readline())
        if "return" in r or "error" in r:
            return r
json.loads(f.readline())
cmd({"execute": "qmp_capabilities"})
mode, arg = sys.argv[2], sys.argv[3:]
t0 = time.monotonic()
if mode == "add":
    n = int(arg[0])
    for i in range(n):
        node = {"driver": "qcow2", "node-name": f"n{i}", "file": {"driver": "file", "filename": f"{arg[1]}/d{i}.qcow2"}}
        r = cmd({"execute": "blockdev-add", "arguments": node})
        if "error" in r and "driver" in r["error"]["desc"]:
            # The seed's form (options wrapper, with a device id) for a daemon without 7.2's flat one.
            node["id"] = f"d{i}"; del node["node-name"]
            r = cmd({"execute": "blockdev-add", "arguments": {"options": node}})
        if "error" in r:
            sys.exit(f"blockdev-add {i}: {r}")
elif mode == "ping":
    cmd({"execute": "query-named-block-nodes"})
print(f"{time.monotonic() - t0:.3f}")
PY

start_ours() { "$sb" daemon --qmp "unix:$work/$1.sock" "${@:2}" >"$work/$1.log" 2>&1 & pids+=($!); pid=$!; }
start_qsd() {
  qemu-storage-daemon --chardev "socket,path=$work/$1.sock,server=on,wait=off,id=m" --monitor chardev=m "${@:2}" \
    >"$work/$1.log" 2>&1 & pids+=($!); pid=$!
}
idle_blockdev() { echo "driver=raw,node-name=disk0,file.driver=file,file.filename=$work/idle-$1.raw"; }

# 1. Idle: one node, one QMP round trip served, then a few seconds to settle.
start_ours ours-idle --blockdev "$(idle_blockdev ours)"; ours_idle_pid=$pid
start_qsd qsd-idle --blockdev "$(idle_blockdev qsd)"; qsd_idle_pid=$pid
python3 "$work/qmp.py" "$work/ours-idle.sock" ping >/dev/null
python3 "$work/qmp.py" "$work/qsd-idle.sock" ping >/dev/null
sleep 3
ours_idle=$(rss_kib "$ours_idle_pid"); qsd_idle=$(rss_kib "$qsd_idle_pid")

# 2. 100 qcow2 nodes, added one command at a time.
start_ours ours-many; ours_many_pid=$pid
ours_add=$(python3 "$work/qmp.py" "$work/ours-many.sock" add 100 "$work/many-ours")
ours_many=$(rss_kib "$ours_many_pid")
start_qsd qsd-many; qsd_many_pid=$pid
qsd_add=$(python3 "$work/qmp.py" "$work/qsd-many.sock" add 100 "$work/many-qsd")
qsd_many=$(rss_kib "$qsd_many_pid")

# 3. One-shot tools: median wall time and median peak RSS of RUNS runs each, alternating.
measure() { # tool args... -> "seconds kib" per run into a file named by $label
  /usr/bin/time -f "%e %M" -o "$work/t" "$@" >/dev/null 2>&1 || true
  cat "$work/t"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
for sub in info check; do
  : >"$work/ours-$sub"; : >"$work/qemu-$sub"
  for _ in $(seq "$runs"); do
    measure "$sb" img "$sub" "$work/small.qcow2" >>"$work/ours-$sub"
    measure qemu-img "$sub" "$work/small.qcow2" >>"$work/qemu-$sub"
  done
done
col() { awk -v c="$1" '{ print $c }' "$2" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

echo "| measure | sharpblock (NativeAOT) | QEMU 7.2 | ratio |"
echo "|---|---|---|---|"
echo "| daemon idle, one raw node: RSS | $(mib "$ours_idle") | $(mib "$qsd_idle") | $(ratio "$ours_idle" "$qsd_idle") |"
echo "| add 100 qcow2 nodes over QMP: time | ${ours_add} s | ${qsd_add} s | $(ratio "$ours_add" "$qsd_add") |"
echo "| ... RSS afterwards | $(mib "$ours_many") | $(mib "$qsd_many") | $(ratio "$ours_many" "$qsd_many") |"
for sub in info check; do
  ot=$(col 1 "$work/ours-$sub"); qt=$(col 1 "$work/qemu-$sub")
  om=$(col 2 "$work/ours-$sub"); qm=$(col 2 "$work/qemu-$sub")
  echo "| img $sub, small qcow2: wall (median of $runs) | ${ot} s | ${qt} s | $(ratio "$ot" "$qt") |"
  echo "| img $sub: peak RSS (median) | $(mib "$om") | $(mib "$qm") | $(ratio "$om" "$qm") |"
done
echo
echo "Load during the run: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min), $(nproc) cores."
