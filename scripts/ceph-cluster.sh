#!/usr/bin/env bash
# A throwaway single-node Ceph cluster for the rbd tests and bench: one mon and one memstore OSD on
# 127.0.0.1, everything (config, keyrings, logs, sockets, pid files) inside DIR.
#   scripts/ceph-cluster.sh start DIR   prints CEPH_CONF=DIR/ceph.conf once pool "rbd" is usable
#   scripts/ceph-cluster.sh stop DIR    kills the daemons by the PIDs in DIR/run and removes nothing else
# Every ceph CLI call runs under timeout: without a mgr some commands wait forever.
set -euo pipefail

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
T="timeout 20"

stop() {
  local pidfile pid
  for pidfile in "$dir"/run/*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile" 2>/dev/null || true)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  # Wait (bounded) for the daemons to go so the next cluster can reuse nothing by accident.
  for _ in $(seq 100); do
    local alive=0
    for pidfile in "$dir"/run/*.pid; do
      [ -e "$pidfile" ] || continue
      pid=$(cat "$pidfile" 2>/dev/null || true)
      [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=1
    done
    [ $alive = 0 ] && return 0
    sleep 0.1
  done
  for pidfile in "$dir"/run/*.pid; do
    [ -e "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
  done
}

free_port() {
  # The kernel picks a free port; the mon binds it a moment later (a race only with another binder).
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
  for tool in ceph ceph-mon ceph-osd ceph-authtool monmaptool rbd; do
    command -v "$tool" >/dev/null || { echo "ceph-cluster: $tool missing (scripts/install-deps.sh)" >&2; exit 1; }
  done
  mkdir -p "$dir"/run "$dir"/log "$dir"/mon "$dir"/osd
  dir=$(cd "$dir" && pwd)
  local fsid port conf
  fsid=$(cat /proc/sys/kernel/random/uuid)
  port=$(free_port)
  conf="$dir/ceph.conf"
  cat >"$conf" <<CONF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$port
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr2 = false
ms bind msgr1 = true
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $dir/keyring
run dir = $dir/run
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
mon cluster log file = $dir/log/cluster.log
log to stderr = false
err to stderr = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
paxos propose interval = 0.01
mon data = $dir/mon/\$cluster-\$id
osd data = $dir/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = 2147483648
osd max object name len = 256
osd max object namespace len = 64
CONF
  $T ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  $T ceph-authtool "$dir/keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
  $T monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$port]" "$dir/monmap" >/dev/null
  $T ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring"
  $T ceph-mon -c "$conf" -i a

  # The OSD's key goes into the cluster with `osd new` before its mkfs, as ceph-volume does.
  local uuid key id
  uuid=$(cat /proc/sys/kernel/random/uuid)
  key=$($T ceph-authtool --gen-print-key)
  echo "{\"cephx_secret\": \"$key\"}" >"$dir/osd-secret.json"
  id=$($T ceph -c "$conf" osd new "$uuid" -i "$dir/osd-secret.json")
  mkdir -p "$dir/osd/ceph-$id"
  $T ceph-authtool --create-keyring "$dir/osd/ceph-$id/keyring" --name "osd.$id" --add-key "$key" >/dev/null
  $T ceph-osd -c "$conf" -i "$id" --mkfs --osd-uuid "$uuid" --keyring "$dir/osd/ceph-$id/keyring" 2>>"$dir/log/osd-mkfs.log"
  $T ceph-osd -c "$conf" -i "$id" --keyring "$dir/osd/ceph-$id/keyring"

  $T ceph -c "$conf" osd pool create rbd 8 8 >/dev/null 2>&1
  $T rbd -c "$conf" pool init rbd
  echo "CEPH_CONF=$conf"
}

case "$cmd" in
  start) if ! start; then echo "ceph-cluster: start failed; logs in $dir/log" >&2; stop; exit 1; fi ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
