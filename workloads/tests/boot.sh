#!/bin/bash
# Boots a compact system description (sysdesc form) with the release build
# of this tree, until the root task ends the run or SECONDS pass, and prints
# the COM1 console. The binaries the description names (`bin=`) come from
# target/x86_64-unknown-none/release, without debug info (boot modules are
# mapped page by page; debug info only costs mapping nodes).
# usage (from the repository root, after
#   cargo build --release --target x86_64-unknown-none -p kernel -p sigma0 -p roottask -p rt-workloads -p ts-loads):
#   workloads/tests/boot.sh SYSTEM [SECONDS] [QEMU ARGS...]
# Exit status: QEMU's (33 = run passed, 35 = run failed, 124 = timeout).
set -u
sys=$1; secs=${2:-120}; shift; [ $# -gt 0 ] && shift
rel=target/x86_64-unknown-none/release
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
cp "$sys" "$d/system"
mods="$rel/sigma0,$rel/roottask,$d/system"
for b in $(grep -o ' bin=[^ ]*' "$sys" | cut -d= -f2 | sort -u); do
    objcopy --strip-debug "$rel/$b" "$d/$b" || exit 2
    mods="$mods,$d/$b"
done
timeout "$secs" qemu-system-x86_64 -accel tcg -cpu max -m 128M -display none -no-reboot -monitor none \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 -serial stdio -kernel "$rel/kernel" -initrd "$mods" "$@" 2>&1
