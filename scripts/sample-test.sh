#!/usr/bin/env bash
# The library as a user gets it: packs SharpBlock into a fresh local feed, restores samples/ImageTour from
# that feed (not by project reference), publishes it with NativeAOT (a trim or AOT warning fails the build),
# runs the native program, and lets qemu-img judge what it wrote. Prints "sample: ok" or fails.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A version of its own per run: a package restored once is cached by version, and would hide a change.
version="0.1.0-local.$(date +%s)"
dotnet pack src/SharpBlock -nologo -v quiet -o "$work/feed" -p:Version="$version"
dotnet publish samples/ImageTour -nologo -v quiet -r linux-x64 -o "$work/bin" \
  -p:SharpBlockVersion="$version" -p:RestoreAdditionalProjectSources="$work/feed" \
  -p:RestorePackagesPath="$work/packages" -p:BaseIntermediateOutputPath="$work/obj/" -p:BaseOutputPath="$work/out/"
"$work/bin/ImageTour" "$work/images" | tee "$work/out.txt"
grep -q '^opened .*: format qcow2, 67108864 bytes$' "$work/out.txt"
grep -q '^  vhdx: 100%$' "$work/out.txt"
img="$work/images"
for f in tour.qcow2 tour.vhdx; do qemu-img check -q "$img/$f"; done
qemu-img compare -q "$img/tour.qcow2" "$img/tour.vmdk"
qemu-img compare -q "$img/tour.qcow2" "$img/tour.vhdx"
# What the program wrote is where it wrote it (qemu-io reads the pattern back).
qemu-io -r -f qcow2 -c 'read -v 4194304 16' "$img/tour.qcow2" | grep -q '00400000:  00 07 0e 15 1c 23 2a 31 38 3f 46 4d 54 5b 62 69'
echo "sample: ok"
