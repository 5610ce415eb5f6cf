#!/usr/bin/env bash
# `img convert` of an image served over http, ours against qemu-img's curl driver (Debian's qemu-block-extra),
# in one run on the same nginx (loopback, a config in a temp dir, no system service): raw -> raw and
# qcow2 -> raw. Both outputs are checked with qemu-img compare. Times are wall seconds of the whole process,
# best of $RUNS (default 3). The issue's goal is a ratio (ours / qemu-img) of at most 1.0.
# Usage: bench/http-bench.sh [SIZE_MIB]   (default 512). Override the binary with SB=/path/to/sharpblock.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib=${1:-512}
runs=${RUNS:-3}
work=$(mktemp -d /tmp/http-bench.XXXXXX)
ngx_pid=""
trap '[ -n "$ngx_pid" ] && kill "$ngx_pid" 2>/dev/null; rm -rf "$work"' EXIT

if [[ -n "${SB:-}" ]]; then
  read -ra sharpblock <<< "$SB"
elif dotnet publish src/SharpBlock.Cli -c Release -o "$work/bin" >"$work/publish.log" 2>&1 && [ -x "$work/bin/sharpblock" ]; then
  sharpblock=("$work/bin/sharpblock")
else
  dotnet build src/SharpBlock.Cli -c Release -o "$work/bin" >"$work/build.log" 2>&1
  sharpblock=(dotnet "$work/bin/sharpblock.dll")
fi

mkdir -p "$work/www"
head -c "$((size_mib << 20))" /dev/urandom > "$work/www/disk.raw"
qemu-img convert -f raw -O qcow2 "$work/www/disk.raw" "$work/www/disk.qcow2"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
pid $work/nginx.pid; error_log $work/error.log;
events { worker_connections 256; }
http { access_log off; client_body_temp_path $work; proxy_temp_path $work; fastcgi_temp_path $work;
       uwsgi_temp_path $work; scgi_temp_path $work;
       server { listen 127.0.0.1:$port; root $work/www; } }
CONF
/usr/sbin/nginx -c "$work/nginx.conf" -p "$work" -e "$work/error.log" &
ngx_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done

best() { # best wall time of $runs runs of "$@"
  local b=""
  for _ in $(seq "$runs"); do
    local s e
    s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N)
    b=$(python3 -c "import sys; t=$e-$s; b='$b'; print(t if not b else min(t, float(b)))")
  done
  echo "$b"
}

url="http://127.0.0.1:$port"
echo "| http convert, ${size_mib} MiB | qemu-img (s) | sharpblock (s) | ratio |"
echo "|---|---|---|---|"
for src in disk.raw disk.qcow2; do
  q=$(best qemu-img convert -O raw "$url/$src" "$work/q.raw")
  s=$(best "${sharpblock[@]}" img convert -O raw "$url/$src" "$work/s.raw")
  qemu-img compare -q -f raw -F raw "$work/q.raw" "$work/www/disk.raw"
  qemu-img compare -q -f raw -F raw "$work/s.raw" "$work/www/disk.raw"
  printf '| %s | %.2f | %.2f | %.2f |\n' "$src" "$q" "$s" "$(python3 -c "print($s/$q)")"
done
