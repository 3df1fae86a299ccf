#!/usr/bin/env bash
# Boots the pagers' in-guest test image once and prints its console.
#
# usage (from the repository root, after `just build`):
#   pager-tests/run.sh [IMAGE [SECONDS [icount|tcg]]]
#
# IMAGE defaults to pager-tests/images/pagers/system (the tests), SECONDS to 300,
# the accelerator to icount; pager-tests/images/bench/system prints the pagers'
# figures (under plain `tcg` too, to compare).
#
# The boot: the test kernel (it has DEBUG_TRANSLATE) with `test=system
# kmem=64`, modules sigma0, roottask, system (pager-tests/images/pagers/system),
# rt-pager, ts-pager, ts-load, pager-test, 128 MiB, TCG with
# `-icount shift=0,sleep=off` (guest time counts guest instructions, so the
# RT deadlines are checked against the guest's own work, not against the
# host's translation stalls; the run is deterministic). The root task ends
# the run through isa-debug-exit: QEMU exits 33 when every RT and test task
# ended with status 0, 35 otherwise.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
image=${1:-$root/pager-tests/images/pagers/system}
secs=${2:-300}
case ${3:-icount} in
    icount) accel=(-icount shift=0,sleep=off -seed 1 -rtc clock=vm,base=2024-01-01T00:00:00) ;;
    tcg) accel=() ;;
    *) echo "pager-tests: the accelerator is icount or tcg, not \`$3\`" >&2; exit 2 ;;
esac
b=$root/build
for f in "$b/kernel-test.elf" "$b"/modules/{sigma0,roottask,rt-pager,ts-pager,ts-load,pager-test}; do
    [ -f "$f" ] || { echo "pager-tests: $f is missing: run \`just build\` first" >&2; exit 2; }
done
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
cp "$image" "$d/system"
m=$b/modules
status=0
timeout "$secs" qemu-system-x86_64 -accel tcg -cpu max "${accel[@]}" -m 128M -display none -no-reboot -monitor none \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 -serial stdio \
    -kernel "$b/kernel-test.elf" -append "test=system kmem=64" \
    -initrd "$m/sigma0,$m/roottask,$d/system,$m/rt-pager,$m/ts-pager,$m/ts-load,$m/pager-test" || status=$?
echo "pager-tests: qemu exit $status (33 = run passed, 35 = run failed, 124 = timeout)"
[ "$status" -eq 33 ]
