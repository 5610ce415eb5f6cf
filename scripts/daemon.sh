#!/usr/bin/env bash
# Starts the SharpBlock storage daemon from the native (NativeAOT) build, building it first when the
# sources are newer than the binary. Arguments go to `sharpblock daemon`; with none it listens for QMP
# on a Unix socket whose path it prints.
set -euo pipefail
cd "$(dirname "$0")/.."
out=artifacts/native
bin="$out/sharpblock"
if [ ! -x "$bin" ] || [ -n "$(find src -newer "$bin" -name '*.cs' -o -newer "$bin" -name '*.qapi' -o -newer "$bin" -name '*.csproj' | head -1)" ]; then
  echo "Building the native sharpblock into $out (first time takes a minute)..." >&2
  dotnet publish src/SharpBlock.Cli -c Release -o "$out" -nologo -v quiet >&2
fi
exec "$bin" daemon "$@"
