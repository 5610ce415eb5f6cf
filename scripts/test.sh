#!/usr/bin/env bash
# Runs the whole suite: format check, then every test project (unit, protocol, daemon, interop with
# the real qemu tools). Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh || exit 1
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

if ! dotnet format whitespace SharpBlock.slnx --verify-no-changes; then
  echo "Formatting differs; run: dotnet format whitespace SharpBlock.slnx" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

if ! dotnet build SharpBlock.slnx -nologo -v quiet; then
  echo "0 passed, 1 failed"
  exit 1
fi

# One test assembly at a time: the throttle and job tests measure rates, and the other assemblies
# competing for the two cores would skew what they measure.
results=$(mktemp -d)
dotnet test SharpBlock.slnx --no-build -m:1 --logger "trx" --logger "console;verbosity=normal" --results-directory "$results" "$@"
rc=$?

passed=0 failed=0
for f in "$results"/*.trx; do
  [ -f "$f" ] || continue
  line=$(grep -o '<Counters [^>]*>' "$f" | head -1)
  p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$line"); f2=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$line")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f2:-0}))
done
rm -rf "$results"
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
exit "$rc"
