#!/usr/bin/env bash
# Installs the real tools the interop tests run against (qemu-img, qemu-io, qemu-nbd,
# qemu-storage-daemon, nbdinfo, nbdcopy, socat; bximage, create_compressed_fs and dmg2img make and read the
# bochs, cloop and dmg test images; mtools and dosfstools read the FAT disks vvfat makes; ceph-mon, ceph-osd
# and the ceph/rbd CLIs run the throwaway cluster of scripts/ceph-cluster.sh, librbd1/librados2 are what the
# rbd driver loads, qemu-block-extra is qemu-img's rbd). As root it installs what is missing; otherwise it
# says what to install. Under CI=true a missing tool is an error, never a silent skip.
# Fuzzing's afl++ is not needed by the test run; scripts/fuzz.sh installs it when it runs.
set -euo pipefail

need=()
for tool in qemu-img qemu-io qemu-nbd qemu-storage-daemon nbdinfo nbdcopy socat bximage create_compressed_fs dmg2img mdir fsck.fat ceph-mon ceph-osd ceph rbd; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
[ -e /usr/lib/x86_64-linux-gnu/qemu/block-rbd.so ] || [ -e /usr/lib/qemu/block-rbd.so ] || need+=(qemu-block-rbd)
[ ${#need[@]} -eq 0 ] && exit 0

packages="qemu-utils qemu-system-common libnbd-bin socat bximage cloop-utils dmg2img mtools dosfstools ceph-mon ceph-osd ceph-common librbd1 librados2 qemu-block-extra"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: missing ${need[*]}; installing $packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq $packages >/dev/null
  exit 0
fi

echo "install-deps: missing ${need[*]}; install them with: sudo apt-get install -y $packages" >&2
[ "${CI:-}" = "true" ] && exit 1
exit 0
