#!/usr/bin/env bash
# Runs the whole suite: format check, then every test project (unit, protocol, daemon, interop with
# the real qemu tools). Ends with one line "N passed, N failed, N skipped", also when an earlier step fails.
# A test assembly that ran no tests at all fails the run: a filter or a discovery problem would otherwise
# pass silently.
set -uo pipefail
cd "$(dirname "$0")/.."

if ! scripts/install-deps.sh; then
  echo "Installing the test dependencies failed (scripts/install-deps.sh)" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
# No diagnostics IPC: each .NET process would leave a socket and two pipes in /tmp (killed ones never clean up).
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_EnableDiagnostics=0

if ! dotnet format whitespace SharpBlock.slnx --verify-no-changes; then
  echo "Formatting differs; run: dotnet format whitespace SharpBlock.slnx" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi

if ! dotnet build SharpBlock.slnx -nologo -v quiet; then
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi

# One test assembly at a time: the throttle and job tests measure rates, and the other assemblies
# competing for the two cores would skew what they measure.
results=$(mktemp -d)
# With a filter given (scripts/test.sh --filter X), assemblies without a match are expected to run nothing.
whole=$(( $# == 0 ))
dotnet test SharpBlock.slnx --no-build -m:1 --logger "trx" --logger "console;verbosity=normal" --results-directory "$results" "$@"
rc=$?

passed=0 failed=0 skipped=0 assemblies=0
expected=$(grep -c 'tests/.*\.Tests\.csproj' SharpBlock.slnx)
for f in "$results"/*.trx; do
  [ -f "$f" ] || continue
  assemblies=$((assemblies + 1))
  line=$(grep -o '<Counters [^>]*>' "$f" | head -1)
  count() { sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p" <<<"$line"; }
  t=$(count total); p=$(count passed); f2=$(count failed); s=$(count notExecuted)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f2:-0})); skipped=$((skipped + ${s:-0}))
  if [ "$whole" -eq 1 ] && [ "${t:-0}" -eq 0 ]; then
    echo "A test assembly ran no tests: $(grep -o 'storage="[^"]*"' "$f" | head -1)" >&2
    failed=$((failed + 1)); rc=1
  fi
done
rm -rf "$results"
# The package as a user consumes it (only in a whole run: a filtered run is about other tests).
if [ "$whole" -eq 1 ]; then
  if scripts/sample-test.sh; then passed=$((passed + 1)); else echo "The package sample failed (scripts/sample-test.sh)" >&2; failed=$((failed + 1)); rc=1; fi
fi
if [ "$whole" -eq 1 ] && [ "$assemblies" -lt "$expected" ]; then
  echo "Only $assemblies of $expected test assemblies reported results" >&2
  failed=$((failed + 1)); rc=1
fi
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed, $skipped skipped"
exit "$rc"
