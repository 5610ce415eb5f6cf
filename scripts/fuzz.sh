#!/usr/bin/env bash
# Runs one fuzz target under AFL++ for a while, then says what it found.
#   scripts/fuzz.sh TARGET SECONDS [OUT]      TARGET: qcow2 | nbd | qmp (see: dotnet run --project bench/fuzz -- list)
# The library assemblies are instrumented with SharpFuzz (the repo's local dotnet tool) in a private build
# folder, so the normal build is never touched. Crashes and hangs land in OUT (default
# bench/fuzz/out/TARGET, git-ignored) under default/crashes and default/hangs; each one is replayed at the
# end to show the exception. As root it installs afl++ when missing; otherwise it says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:?usage: scripts/fuzz.sh TARGET SECONDS [OUT]}
seconds=${2:?usage: scripts/fuzz.sh TARGET SECONDS [OUT]}
out=${3:-bench/fuzz/out/$target}
corpus=bench/fuzz/corpus/$target
[ -d "$corpus" ] || { echo "fuzz: no target '$target' (no $corpus)" >&2; exit 2; }

if ! command -v afl-fuzz >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "fuzz: installing afl++" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq afl++ >/dev/null
  else
    echo "fuzz: afl-fuzz is missing; install it with: sudo apt-get install -y afl++" >&2
    exit 1
  fi
fi

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet tool restore >/dev/null
build=bench/fuzz/out/build
rm -rf "$build" "$build.plain"
dotnet publish bench/fuzz -c Release -o "$build" -nologo -v quiet >/dev/null
# Instrumented code only runs under AFL (it writes AFL's shared coverage map): the replay uses a plain copy.
cp -r "$build" "$build.plain"
for asm in SharpBlock.Core SharpBlock.Nbd SharpBlock.Qmp; do
  dotnet tool run sharpfuzz "$build/$asm.dll" >/dev/null
done

# AFL wants small inputs: seeds over 100 KiB (the 64 KiB-cluster image) stay for the in-process replay.
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
find "$corpus" -type f -size -100k -exec cp {} "$seeds"/ \;

mkdir -p "$out"
# dotnet itself is not instrumented (the assemblies are), the machine's core_pattern and CPU governor
# are not ours to change, and a JIT start takes a while: AFL is told all of that.
export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1 \
  AFL_NO_AFFINITY=1 AFL_FORKSRV_INIT_TMOUT=60000 AFL_AUTORESUME=1
echo "fuzz: $target for $seconds s; findings in $out/default/{crashes,hangs}"
afl-fuzz -i "$seeds" -o "$out" -t 3000 -m none -V "$seconds" -- dotnet "$build/SharpBlock.Fuzz.dll" afl "$target" >"$out/afl.log" 2>&1 || {
  echo "fuzz: afl-fuzz failed; its log:" >&2; tail -30 "$out/afl.log" >&2; exit 1; }

stats=$out/default/fuzzer_stats
for key in run_time execs_done execs_per_sec corpus_count edges_found bitmap_cvg saved_crashes saved_hangs; do
  grep -E "^$key +:" "$stats" || true
done
found=0
for kind in crashes hangs; do
  for f in "$out/default/$kind"/id:*; do
    [ -f "$f" ] || continue
    found=$((found + 1))
    echo "== $kind: $f"
    dotnet "$build.plain/SharpBlock.Fuzz.dll" replay "$target" "$f" | head -15 || true
  done
done
echo "fuzz: $target found $found crash/hang input(s) in $out/default"
