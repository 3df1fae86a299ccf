#!/usr/bin/env bash
# Boots the pagers' in-guest test image once and prints its console.
#
# usage (from the repository root, after `just build`):
#   pager-tests/run.sh [SECONDS]
#
# The boot: the test kernel (it has DEBUG_TRANSLATE) with `test=user
# kmem=64`, modules sigma0, roottask, system (pager-tests/pagers.system),
# rt-pager, ts-pager, ts-load, pager-test, 128 MiB, TCG with
# `-icount shift=0,sleep=off` (guest time counts guest instructions, so the
# RT deadlines are checked against the guest's own work, not against the
# host's translation stalls; the run is deterministic). The root task ends
# the run through isa-debug-exit: QEMU exits 33 when every RT and test task
# ended with status 0, 35 otherwise.
set -euo pipefail
secs=${1:-300}
root=$(cd "$(dirname "$0")/.." && pwd)
b=$root/build
for f in "$b/kernel-test.elf" "$b"/modules/{sigma0,roottask,rt-pager,ts-pager,ts-load,pager-test}; do
    [ -f "$f" ] || { echo "pager-tests: $f is missing: run \`just build\` first" >&2; exit 2; }
done
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
cp "$root/pager-tests/pagers.system" "$d/system"
m=$b/modules
status=0
timeout "$secs" qemu-system-x86_64 -accel tcg -cpu max -icount shift=0,sleep=off -seed 1 \
    -rtc clock=vm,base=2024-01-01T00:00:00 -m 128M -display none -no-reboot -monitor none \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 -serial stdio \
    -kernel "$b/kernel-test.elf" -append "test=user kmem=64" \
    -initrd "$m/sigma0,$m/roottask,$d/system,$m/rt-pager,$m/ts-pager,$m/ts-load,$m/pager-test" || status=$?
echo "pager-tests: qemu exit $status (33 = run passed, 35 = run failed, 124 = timeout)"
[ "$status" -eq 33 ]
