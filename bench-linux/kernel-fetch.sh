#!/usr/bin/env bash
# Fetches the stock Linux kernel that `just bench` compares Prism with:
# Debian's own kernel package (what `linux-image-amd64` depends on), through
# the system's apt (`apt-get download`), pinned by version and checked
# against the SHA-256 in kernel-fetch.lock. Only the kernel image is
# unpacked (`dpkg-deb --fsys-tarfile`, ./boot only) into DEST (default
# build/linux) as vmlinuz and config: `dpkg -x` would unpack 400 MB of
# modules the benchmark never loads. The .deb is deleted afterwards.
#
# Idempotent: a complete DEST whose lock matches is left as it is.
# Never fatal for `just setup` when the kernel cannot be had (another
# distribution, or the mirror no longer carries the pinned version): it
# says so and `just bench` runs Prism's side alone. A wrong checksum is
# fatal. `kernel-fetch.sh --pin` prints the lock line for the version the
# mirror carries now (to update the lock deliberately).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
lock=$here/kernel-fetch.lock

if [ "${1:-}" = "--pin" ]; then
    dep=$(apt-cache show linux-image-amd64 | sed -n 's/^Depends: \(linux-image-[^ ,]*\).*/\1/p' | head -1)
    ver=$(apt-cache show "$dep" | sed -n 's/^Version: //p' | head -1)
    sum=$(apt-cache show "$dep=$ver" | sed -n 's/^SHA256: //p' | head -1)
    echo "$dep $ver $sum"
    exit 0
fi

dest=${1:-build/linux}
if [ -f "$dest/.complete" ] && cmp -s "$dest/.complete" "$lock" && [ -f "$dest/vmlinuz" ]; then
    echo "kernel-fetch: $dest is complete ($(cat "$dest/release"))"
    exit 0
fi
skip() {
    echo "kernel-fetch: skipped: $*; \`just bench\` will run Prism's side only (or set PRISM_LINUX_KERNEL=/path/to/bzImage)" >&2
    exit 0
}
. /etc/os-release
[ "${VERSION_CODENAME:-}" = bookworm ] || skip "the pinned kernel is Debian 12's (this is ${PRETTY_NAME:-unknown})"
command -v apt-get >/dev/null || skip "no apt-get"

read -r pkg ver sum < <(grep -v '^#' "$lock" | grep .)
work=$(realpath -m "$dest").part
rm -rf "$work"
mkdir -p "$work"
download() { (cd "$work" && apt-get download -qq "$pkg=$ver" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true); ls "$work/${pkg}_"*.deb 2>/dev/null | head -1; }
deb=$(download)
if [ -z "$deb" ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq || true
    deb=$(download)
fi
if [ -z "$deb" ]; then
    rm -rf "$work"
    skip "$pkg $ver is not on the mirror any more (\`bash $0 --pin\` prints the current lock line)"
fi
got=$(sha256sum "$deb" | cut -d' ' -f1)
if [ "$got" != "$sum" ]; then
    echo "kernel-fetch: $deb: sha256 $got, expected $sum (kernel-fetch.lock)" >&2
    rm -rf "$work"
    exit 1
fi
[ "$(dpkg-deb -f "$deb" Version)" = "$ver" ] || { echo "kernel-fetch: $deb is not version $ver" >&2; exit 1; }
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" --wildcards './boot/vmlinuz-*' './boot/config-*'
mv "$work"/boot/vmlinuz-* "$work/vmlinuz"
mv "$work"/boot/config-* "$work/config"
rm -rf "$work/boot" "$deb"
echo "$pkg $ver" > "$work/release"
cp "$lock" "$work/.complete"
rm -rf "$dest"
mv "$work" "$dest"
echo "kernel-fetch: ok ($dest/vmlinuz: $pkg $ver)"
