#!/usr/bin/env bash
# Makes the golden qcow2 images with the real qemu-img and qemu-io, in the directory given (created if
# missing), plus manifest.txt: one line per image, "NAME SHA256", the checksum of what
# `qemu-img convert -O raw` reads from it. Images are small (a few MiB) so tests can make them on every run;
# nothing large is checked in. The content is deterministic (qemu-io patterns), so the checksums are too.
set -euo pipefail
out="${1:?usage: make-golden-images.sh OUTDIR}"
mkdir -p "$out"
cd "$out"
rm -f ./*.qcow2 manifest.txt

img() { qemu-img "$@" >/dev/null; }
io() { local f="$1"; shift; local args=(); for c in "$@"; do args+=(-c "$c"); done; qemu-io -f qcow2 "${args[@]}" "$f" >/dev/null; }

# The same guest writes for most images: data in several clusters, a pattern crossing cluster borders,
# zeros over data, and a tail write.
common_writes() {
  io "$1" "write -P 0x11 0 192k" "write -P 0x22 300k 5k" "write -P 0x33 1M 640k" "write -z 1152k 128k" "write -P 0x44 3M 4k"
}

# Versions and cluster sizes.
img create -f qcow2 -o compat=0.10 v2-64k.qcow2 4M && common_writes v2-64k.qcow2
img create -f qcow2 -o compat=1.1 v3-64k.qcow2 4M && common_writes v3-64k.qcow2
img create -f qcow2 -o cluster_size=512 v3-512.qcow2 4M && common_writes v3-512.qcow2
img create -f qcow2 -o compat=0.10,cluster_size=512 v2-512.qcow2 4M && common_writes v2-512.qcow2
img create -f qcow2 -o cluster_size=2M v3-2M.qcow2 8M && common_writes v3-2M.qcow2 && io v3-2M.qcow2 "write -P 0x55 6M 1M"

# Refcount widths.
img create -f qcow2 -o refcount_bits=1 rc1.qcow2 4M && common_writes rc1.qcow2
img create -f qcow2 -o refcount_bits=64 rc64.qcow2 4M && common_writes rc64.qcow2

# Compressed clusters (some compress, some do not), from a raw source.
img create -f raw src.raw 4M
qemu-io -f raw -c "write -P 0x61 0 1M" -c "write -P 0x62 2M 64k" src.raw >/dev/null
img convert -c -O qcow2 src.raw compressed.qcow2
rm -f src.raw

# Zero clusters: plain (unmapped) and preallocated, and writes after them.
img create -f qcow2 zero.qcow2 4M
io zero.qcow2 "write -P 0x71 0 2M" "write -z 64k 128k" "write -z -u 512k 256k" "write -z -u 3M 1M" "write -P 0x72 576k 4k"

# A backing chain with backing_fmt; the top has data, zeros over backing data, and untouched ranges.
img create -f qcow2 chain-base.qcow2 4M
io chain-base.qcow2 "write -P 0x81 0 3M"
img create -f qcow2 -b chain-base.qcow2 -F qcow2 chain-top.qcow2
io chain-top.qcow2 "write -P 0x82 64k 64k" "write -z 1M 256k" "write -P 0x83 2M 4k"

# Internal snapshots: state A, snapshot, state B, second snapshot, state C, then revert to the first.
img create -f qcow2 snapshot.qcow2 4M
io snapshot.qcow2 "write -P 0x91 0 1M"
img snapshot -c first snapshot.qcow2
io snapshot.qcow2 "write -P 0x92 512k 1M" "write -z 0 64k"
img snapshot -c second snapshot.qcow2
io snapshot.qcow2 "write -P 0x93 3M 64k"
img snapshot -a first snapshot.qcow2

# Discards: freed clusters in the middle of data, with and without a backing file below.
img create -f qcow2 discard.qcow2 4M
io discard.qcow2 "write -P 0xa1 0 2M" "discard 256k 512k" "discard 1536k 64k"
img create -f qcow2 -b chain-base.qcow2 -F qcow2 discard-top.qcow2
io discard-top.qcow2 "write -P 0xa2 0 1M" "discard 128k 256k"

# Lazy refcounts, left dirty: qemu-io aborts without cleaning up.
img create -f qcow2 -o lazy_refcounts=on lazy-dirty.qcow2 4M
(ulimit -c 0; exec qemu-io -f qcow2 -c "write -P 0xb1 0 1M" -c "write -P 0xb2 2M 128k" -c abort lazy-dirty.qcow2) >/dev/null 2>&1 || true

for f in *.qcow2; do
  qemu-img convert -U -O raw "$f" manifest.raw
  echo "$f $(sha256sum <manifest.raw | cut -d' ' -f1)" >>manifest.txt
  rm -f manifest.raw
done

# ---- vhdx (begin) -------------------------------------------------------------------------------------
# Golden vhdx images for tests/SharpBlock.Interop.Tests/Vhdx/VhdxGoldenImageTests: every subformat and
# option qemu-img takes, filled by qemu-io with data, zero writes and the last sector. Their own manifest
# (vhdx-manifest.txt, same form) keeps them out of the qcow2 tests' loop.
rm -f ./*.vhdx vhdx-manifest.txt
vio() { local f="$1"; shift; local args=(); for c in "$@"; do args+=(-c "$c"); done; qemu-io -f vhdx "${args[@]}" "$f" >/dev/null; }
vhdx_writes() {
  vio "$1" "write -P 0x11 0 192k" "write -P 0x22 1048000 5k" "write -P 0x33 2M 1M" "write -z 2304k 128k" "write -P 0x44 $(( $2 - 512 )) 512"
}
img create -f vhdx dynamic.vhdx 6M && vhdx_writes dynamic.vhdx 6291456
img create -f vhdx -o block_size=1M,log_size=2M dynamic-1M.vhdx 6M && vhdx_writes dynamic-1M.vhdx 6291456
img create -f vhdx -o block_state_zero=off dynamic-not-present.vhdx 6M && vhdx_writes dynamic-not-present.vhdx 6291456
img create -f vhdx -o subformat=fixed fixed.vhdx 6M && vhdx_writes fixed.vhdx 6291456
img create -f vhdx -o subformat=fixed,block_size=1M,block_state_zero=off fixed-1M.vhdx 5M && vhdx_writes fixed-1M.vhdx 5242880
img create -f vhdx empty.vhdx 3M
for f in *.vhdx; do
  qemu-img convert -U -O raw "$f" manifest.raw
  echo "$f $(sha256sum <manifest.raw | cut -d' ' -f1)" >>vhdx-manifest.txt
  rm -f manifest.raw
done
# ---- vhdx (end) ---------------------------------------------------------------------------------------

# ---- vdi and vpc (VirtualBox and Virtual PC / Hyper-V images) -------------------------------------------
# Their own manifest, golden-vdi-vpc.txt: "NAME FORMAT SHA256" (the format is given because a fixed VHD has
# no header to probe). Same deterministic writes: data, zeros written, a block's tail, the last sector.
rm -f ./*.vdi ./*.vpc golden-vdi-vpc.txt
vio() { local fmt="$1" f="$2"; shift 2; local args=(); for c in "$@"; do args+=(-c "$c"); done; qemu-io -f "$fmt" "${args[@]}" "$f" >/dev/null; }
last_sector() { echo $(($(qemu-img info -f "$1" --output=json "$2" | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p') - 512)); }
vdi_writes() { vio vdi "$1" "write -P 0x11 0 192k" "write -P 0x22 1000k 100k" "write -z 2M 512k" "write -P 0x44 $(last_sector vdi "$1") 512"; }
vpc_writes() { vio vpc "$1" "write -P 0x11 0 192k" "write -P 0x22 2000k 100k" "write -z 3M 512k" "write -P 0x44 $(last_sector vpc "$1") 512"; }

img create -f vdi -o static=off vdi-dynamic.vdi 5M && vdi_writes vdi-dynamic.vdi
img create -f vdi -o static=on vdi-static.vdi 5M && vdi_writes vdi-static.vdi
img create -f vdi vdi-empty.vdi 3M
# A block VirtualBox discarded (map entry 0xfffffffe) over data that is still in the file: it reads as zeros.
img create -f vdi -o static=on vdi-discarded.vdi 3M && vio vdi vdi-discarded.vdi "write -P 0x55 0 3M"
printf '\xfe\xff\xff\xff' | dd of=vdi-discarded.vdi bs=1 seek=516 conv=notrunc status=none

# 5 MiB is not a whole CHS geometry: the dynamic and fixed images round up, force_size keeps it.
img create -f vpc vpc-dynamic.vpc 5M && vpc_writes vpc-dynamic.vpc
img create -f vpc -o subformat=fixed vpc-fixed.vpc 5M && vpc_writes vpc-fixed.vpc
img create -f vpc -o force_size=on vpc-force.vpc 5M && vpc_writes vpc-force.vpc
img create -f vpc -o subformat=fixed,force_size=on vpc-fixed-force.vpc 5M && vpc_writes vpc-fixed-force.vpc
img create -f vpc vpc-empty.vpc 3M

for f in *.vdi *.vpc; do
  fmt="${f##*.}"
  qemu-img convert -f "$fmt" -O raw "$f" golden-vdi-vpc.raw
  echo "$f $fmt $(sha256sum <golden-vdi-vpc.raw | cut -d' ' -f1)" >>golden-vdi-vpc.txt
  rm -f golden-vdi-vpc.raw
done
# ---- end of vdi and vpc ----------------------------------------------------------------------------------

# ---- vmdk golden images (fmt-vmdk) ---------------------------------------------------------------------
# In OUTDIR/vmdk with a manifest of their own (NAME SHA256 of the raw content), one line per image a user
# opens (descriptors, not the extent files they name). Every subformat, zeroed grains, qemu's option values,
# a stream converted from raw, and a backing chain.
(
  mkdir -p vmdk && cd vmdk
  rm -f ./*.vmdk ./*.raw manifest.txt
  vio() { local f="$1"; shift; local args=(); for c in "$@"; do args+=(-c "$c"); done; qemu-io -f vmdk "${args[@]}" "$f" >/dev/null; }
  vwrites() { vio "$1" "write -P 0x11 0 192k" "write -P 0x22 300k 5k" "write -P 0x33 1M 640k" "write -z 1152k 128k" "write -P 0x44 4190208 4k"; }
  for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat; do
    qemu-img create -f vmdk -o subformat=$sub $sub.vmdk 4M >/dev/null && vwrites $sub.vmdk
  done
  qemu-img create -f vmdk -o zeroed_grain=on zeroed.vmdk 4M >/dev/null && vwrites zeroed.vmdk
  qemu-img create -f vmdk -o adapter_type=lsilogic,hwversion=7,toolsversion=123 options.vmdk 4M >/dev/null && vwrites options.vmdk
  qemu-img create -f raw stream-src.raw 4M >/dev/null
  qemu-io -f raw -c "write -P 0x61 0 1M" -c "write -P 0x62 2M 64k" -c "write -P 0x63 4193792 512" stream-src.raw >/dev/null
  qemu-img convert -O vmdk -o subformat=streamOptimized stream-src.raw streamOptimized.vmdk
  rm -f stream-src.raw
  qemu-img create -f vmdk chain-base.vmdk 4M >/dev/null && vio chain-base.vmdk "write -P 0x81 0 3M"
  qemu-img create -f vmdk -b chain-base.vmdk -F vmdk chain-top.vmdk >/dev/null
  vio chain-top.vmdk "write -P 0x82 64k 64k" "write -z 1M 256k" "write -P 0x83 2M 4k"
  for f in monolithicSparse.vmdk monolithicFlat.vmdk twoGbMaxExtentSparse.vmdk twoGbMaxExtentFlat.vmdk zeroed.vmdk options.vmdk \
           streamOptimized.vmdk chain-base.vmdk chain-top.vmdk; do
    qemu-img convert -U -O raw "$f" manifest.raw
    echo "$f $(sha256sum <manifest.raw | cut -d' ' -f1)" >>manifest.txt
    rm -f manifest.raw
  done
)
# ---- end of vmdk golden images ---------------------------------------------------------------------------

# ---- qed golden images (fmt-qed) -----------------------------------------------------------------------
# In OUTDIR/qed with a manifest of their own (NAME SHA256 of the raw content). Default and small clusters,
# the largest table size, an empty image, zero clusters, the last sector, and backing chains onto a qed
# and onto a raw image (the raw one recorded as do-not-probe).
(
  mkdir -p qed && cd qed
  rm -f ./*.qed ./*.raw manifest.txt
  qio() { local f="$1"; shift; local args=(); for c in "$@"; do args+=(-c "$c"); done; qemu-io -f qed "${args[@]}" "$f" >/dev/null; }
  qwrites() { qio "$1" "write -P 0x11 0 192k" "write -P 0x22 300k 5k" "write -z 1M 256k" "write -P 0x44 4193792 512"; }
  qemu-img create -f qed default.qed 4M >/dev/null && qwrites default.qed
  qemu-img create -f qed -o cluster_size=4096,table_size=2 small.qed 4M >/dev/null && qwrites small.qed
  qemu-img create -f qed -o cluster_size=1M,table_size=16 big-tables.qed 4M >/dev/null && qwrites big-tables.qed
  qemu-img create -f qed empty.qed 3M >/dev/null
  qemu-img create -f qed chain-base.qed 4M >/dev/null && qio chain-base.qed "write -P 0x81 0 3M"
  qemu-img create -f qed -b chain-base.qed -F qed chain-top.qed >/dev/null
  qio chain-top.qed "write -P 0x82 64k 64k" "write -z 1M 256k" "write -P 0x83 2M 4k"
  qemu-img create -f raw raw-base.raw 4M >/dev/null && qemu-io -f raw -c "write -P 0x91 0 2M" raw-base.raw >/dev/null
  qemu-img create -f qed -b raw-base.raw -F raw raw-top.qed >/dev/null
  qio raw-top.qed "write -P 0x92 100k 10k" "write -P 0x93 3M 1M"
  for f in default.qed small.qed big-tables.qed empty.qed chain-base.qed chain-top.qed raw-top.qed; do
    qemu-img convert -U -O raw "$f" manifest.raw
    echo "$f $(sha256sum <manifest.raw | cut -d' ' -f1)" >>manifest.txt
    rm -f manifest.raw
  done
)
# ---- end of qed golden images ----------------------------------------------------------------------------

# ---- qcow and parallels golden images --------------------------------------------------------------------
# Each in OUTDIR/<format> with its own manifest (NAME SHA256 of the raw content), like qed's.
golden_manifest() {
  rm -f manifest.txt
  for f in "$@"; do
    qemu-img convert -U -O raw "$f" manifest.raw
    echo "$f $(sha256sum <manifest.raw | cut -d' ' -f1)" >>manifest.txt
    rm -f manifest.raw
  done
}
fio() { local fmt="$1" f="$2"; shift 2; local args=(); for c in "$@"; do args+=(-c "$c"); done; qemu-io -f "$fmt" "${args[@]}" "$f" >/dev/null; }
(
  # qcow: the unbacked layout (4 KiB clusters) and the backed one (512-byte clusters), compressed clusters,
  # a chain onto qcow and one onto raw (qcow records no backing format: the base is probed).
  mkdir -p qcow && cd qcow
  rm -f ./*.qcow ./*.raw
  writes() { fio qcow "$1" "write -P 0x11 0 192k" "write -P 0x22 300k 5k" "write -z 1M 256k" "write -P 0x44 4193792 512"; }
  qemu-img create -f qcow default.qcow 4M >/dev/null && writes default.qcow
  qemu-img create -f qcow empty.qcow 3M >/dev/null
  qemu-img create -f raw text.raw 4M >/dev/null
  qemu-io -f raw -c "write -P 0x61 0 1M" -c "write -P 0x62 2M 64k" -c "write -P 0x63 4193792 512" text.raw >/dev/null
  # qemu 7.2 writes every cluster, then fails the empty compressed write convert -c ends with; the image is whole.
  qemu-img convert -c -O qcow text.raw compressed.qcow || true
  rm -f text.raw
  qemu-img create -f qcow chain-base.qcow 4M >/dev/null && fio qcow chain-base.qcow "write -P 0x81 0 3M"
  qemu-img create -f qcow -b chain-base.qcow -F qcow chain-top.qcow >/dev/null
  fio qcow chain-top.qcow "write -P 0x82 64k 64k" "write -z 1M 256k" "write -P 0x83 2M 4k"
  qemu-img create -f raw raw-base.raw 4M >/dev/null && qemu-io -f raw -c "write -P 0x91 0 2M" raw-base.raw >/dev/null
  qemu-img create -f qcow -b raw-base.raw -F raw raw-top.qcow >/dev/null
  fio qcow raw-top.qcow "write -P 0x92 100k 10k" "write -P 0x93 3M 1M"
  golden_manifest default.qcow empty.qcow compressed.qcow chain-base.qcow chain-top.qcow raw-top.qcow
)
(
  # parallels ("WithouFreSpacExt", the only kind qemu-img writes): 1 MiB and 64 KiB clusters, a size that is
  # not a whole number of clusters.
  mkdir -p parallels && cd parallels
  rm -f ./*.parallels
  writes() { fio parallels "$1" "write -P 0x11 0 192k" "write -P 0x22 1000k 100k" "write -z 2M 256k" "write -P 0x44 $(( $2 - 512 )) 512"; }
  qemu-img create -f parallels default.parallels 4M >/dev/null && writes default.parallels 4194304
  qemu-img create -f parallels -o cluster_size=64k small.parallels 4M >/dev/null && writes small.parallels 4194304
  qemu-img create -f parallels empty.parallels 3M >/dev/null
  qemu-img create -f parallels -o cluster_size=64k odd-size.parallels 3000k >/dev/null && writes odd-size.parallels 3072000
  golden_manifest default.parallels small.parallels empty.parallels odd-size.parallels
)
# ---- end of qcow and parallels golden images -------------------------------------------------------------
