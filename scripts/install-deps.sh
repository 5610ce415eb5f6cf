#!/usr/bin/env bash
# Installs the real tools the interop tests run against (qemu-img, qemu-io, qemu-nbd,
# qemu-storage-daemon, nbdinfo, nbdcopy, socat; bximage, create_compressed_fs and dmg2img make and read the
# bochs, cloop and dmg test images; mtools and dosfstools read the FAT disks vvfat makes; ceph-mon, ceph-osd
# and the ceph/rbd CLIs run the throwaway cluster of scripts/ceph-cluster.sh, librbd1/librados2 are what the
# rbd driver loads, qemu-block-extra is qemu-img's rbd and curl; nginx, vsftpd, in.tftpd and openssl are the
# loopback servers and the certificate maker of the curl driver tests, libcurl4 the library the driver
# loads); losetup and blockdev (mount, util-linux) attach and measure the loop devices of the host_device
# tests. As root it installs what is missing; otherwise it
# says what to install. Under CI=true a missing tool is an error, never a silent skip.
# Fuzzing's afl++ is not needed by the test run; scripts/fuzz.sh installs it when it runs.
set -euo pipefail

need=()
for tool in qemu-img qemu-io qemu-nbd qemu-storage-daemon nbdinfo nbdcopy socat bximage create_compressed_fs dmg2img mdir fsck.fat ceph-mon ceph-osd ceph rbd; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
[ -e /usr/lib/x86_64-linux-gnu/qemu/block-rbd.so ] || [ -e /usr/lib/qemu/block-rbd.so ] || need+=(qemu-block-rbd)
for tool in nginx vsftpd in.tftpd losetup blockdev; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || need+=("$tool")
done
command -v openssl >/dev/null 2>&1 || need+=(openssl)
compgen -G "/usr/lib/*/libcurl.so.4" >/dev/null || need+=(libcurl.so.4)
[ ${#need[@]} -eq 0 ] && exit 0

packages="qemu-utils qemu-system-common qemu-block-extra libnbd-bin socat bximage cloop-utils dmg2img mtools dosfstools ceph-mon ceph-osd ceph-common librbd1 librados2 nginx-light vsftpd tftpd-hpa openssl libcurl4 mount util-linux"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: missing ${need[*]}; installing $packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # policy-rc.d keeps the servers' packages from starting system services: the tests run their own.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.sharpblock
  [ -e /usr/sbin/policy-rc.d ] || { cp /usr/sbin/policy-rc.d.sharpblock /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; remove_policy=1; }
  rm -f /usr/sbin/policy-rc.d.sharpblock
  apt-get install -y -qq $packages >/dev/null
  [ "${remove_policy:-}" = 1 ] && rm -f /usr/sbin/policy-rc.d
  exit 0
fi

echo "install-deps: missing ${need[*]}; install them with: sudo apt-get install -y $packages" >&2
[ "${CI:-}" = "true" ] && exit 1
exit 0
