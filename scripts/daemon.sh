#!/usr/bin/env bash
# Starts the SharpBlock storage daemon from the native (NativeAOT) build, building it first only when there
# is none yet or a source file changed since it was built. Arguments go to `sharpblock daemon`; with none it
# listens for QMP on a Unix socket whose path it prints.
set -euo pipefail
cd "$(dirname "$0")/.."
out=artifacts/native
bin="$out/sharpblock"

# Sources, schema and build files; bin/ and obj/ hold build output (rewritten by every build) and do not count.
changed_sources() {
  find src Directory.Build.props Directory.Packages.props global.json \
    \( -name bin -o -name obj \) -prune -o \
    -newer "$bin" \( -name '*.cs' -o -name '*.qapi' -o -name '*.csproj' -o -name '*.props' -o -name '*.json' \) -print | head -1
}

if [ ! -x "$bin" ]; then
  echo "Building the native sharpblock into $out (the first build takes a minute or two)..." >&2
  dotnet publish src/SharpBlock.Cli -c Release -o "$out" -nologo -v quiet >&2
elif [ -n "$(changed_sources)" ]; then
  echo "Sources changed since the last build ($(changed_sources)); rebuilding $bin..." >&2
  dotnet publish src/SharpBlock.Cli -c Release -o "$out" -nologo -v quiet >&2
fi
exec "$bin" daemon "$@"
