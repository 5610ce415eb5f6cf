#!/usr/bin/env bash
# Regenerates the qcow2 seed corpus with the real qemu-img/qemu-io, so the seeds are images QEMU itself
# writes: tiny clusters keep most seeds to a few KiB (AFL mutates small inputs far faster), one 64 KiB
# cluster image keeps the default geometry covered. The NBD and QMP seeds are written by
# `dotnet run --project bench/fuzz -- make-seeds` (they come from the protocol structs, not from a tool).
set -euo pipefail
cd "$(dirname "$0")/corpus/qcow2"
rm -f ./*.qcow2

mk() { qemu-img create -q -f qcow2 "$@"; }
io() { local img=$1; shift; local args=(); for c in "$@"; do args+=(-c "$c"); done; qemu-io -f qcow2 "${args[@]}" "$img" >/dev/null; }

mk -o cluster_size=512 c512-data.qcow2 64K
io c512-data.qcow2 'write -P 0xaa 0 1k' 'write -P 0x55 20k 700' 'write -z 40k 1k'

mk -o cluster_size=512 c512-snapshot.qcow2 64K
io c512-snapshot.qcow2 'write -P 0x11 0 2k'
qemu-img snapshot -c s1 c512-snapshot.qcow2
io c512-snapshot.qcow2 'write -P 0x22 512 1k'

mk -o cluster_size=512 c512-compressed.qcow2 64K
io c512-compressed.qcow2 'write -c -P 0x33 0 512' 'write -c -P 0x44 8k 512' 'write -P 0x66 16k 512'

# The backing file itself is not kept: the targets open an image alone, its backing name only parsed.
mk -o cluster_size=512 base.qcow2 64K
mk -o cluster_size=512 -b base.qcow2 -F qcow2 c512-backing.qcow2
io c512-backing.qcow2 'write -P 0x77 4k 512'
rm base.qcow2

mk -o cluster_size=512,refcount_bits=1 c512-refcount1.qcow2 32K
io c512-refcount1.qcow2 'write -P 0x88 0 1k'

mk -o cluster_size=512,refcount_bits=64,lazy_refcounts=on c512-refcount64-lazy.qcow2 32K
io c512-refcount64-lazy.qcow2 'write -P 0x99 1k 1k'

mk -o cluster_size=4096,compat=0.10 c4k-v2.qcow2 256K
io c4k-v2.qcow2 'write -P 0xbb 0 8k'
qemu-img snapshot -c old c4k-v2.qcow2

mk -o cluster_size=65536 c64k-data.qcow2 1M
io c64k-data.qcow2 'write -P 0xcc 0 4k' 'write -c -P 0xdd 512k 64k'
ls -l
