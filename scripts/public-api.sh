#!/usr/bin/env bash
# Brings the public API files of the packed libraries (src/*/PublicAPI.Unshipped.txt) in line with the code:
# adds what RS0016 reports as new public API (generated schema types included, which `dotnet format` cannot
# fix) and removes what RS0017 reports as gone. Review the diff: it is the change to the package's surface.
# Usage: scripts/public-api.sh
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for round in 1 2 3 4; do
  # The packed libraries only; SharpBlock.Nbd builds SharpBlock.Core first.
  dotnet build src/SharpBlock.Nbd --no-incremental -nologo -v quiet -p:TreatWarningsAsErrors=false >"$log" 2>&1 || true
  set +e
  python3 - "$log" <<'PY'
import re, sys, collections
log = open(sys.argv[1]).read()
add, remove = collections.defaultdict(set), collections.defaultdict(set)
for line in log.splitlines():
    m = re.match(r"(.*?)\(\d+,\d+\): (?:warning|error) (RS001[67]): Symbol '(.*)' is (?:not part of|part of) the declared.*\[(.*\.csproj)\]", line)
    if not m:
        continue
    project = m.group(4).rsplit("/", 1)[0]
    (add if m.group(2) == "RS0016" else remove)[project].add(m.group(3))
for project in set(add) | set(remove):
    path = project + "/PublicAPI.Unshipped.txt"
    lines = [l for l in open(path).read().splitlines() if l and l not in remove[project]]
    header = [l for l in lines if l.startswith("#")]
    body = sorted(set(l for l in lines if not l.startswith("#")) | add[project], key=str.lower)
    open(path, "w").write("\n".join(header + body) + "\n")
    print(f"{path}: +{len(add[project])} -{len(remove[project])}")
if not add and not remove:
    sys.exit(3)
PY
  rc=$?
  set -e
  [ "$rc" -eq 3 ] && { echo "public API files are up to date"; exit 0; }
done
echo "still changing after 4 rounds" >&2; exit 1
