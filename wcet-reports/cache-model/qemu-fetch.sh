#!/usr/bin/env bash
# Fetches a second, current QEMU next to the system's one (which stays as it
# is): Debian's own packages from bookworm-backports, pinned by version and
# checked against the SHA-256 sums in qemu-fetch.lock, unpacked with
# `dpkg -x` into DEST (default build/qemu-10). Run it as
# DEST/usr/bin/qemu-system-x86_64 with `-L DEST/usr/share/qemu -L
# DEST/usr/share/seabios` (`prism` does that by itself for such a tree, see
# `Qemu::at` in wcet-reports/src/qemu.rs).
#
# The backports suite is only an extra source for `apt-get download`, in a
# private apt state under DEST/.apt: the system's sources, lists and
# installed packages are not touched. Its mirror is the one the system's
# apt already uses for bookworm. Libraries the new QEMU links that the
# system lacks are installed from Debian 12 itself (they are ordinary
# bookworm packages; today only libaio1 beyond what QEMU 7.2 brings).
#
# Idempotent: a complete tree whose lock matches is left as it is.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
lock=$here/qemu-fetch.lock
dest=${1:-build/qemu-10}
suite=bookworm-backports
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

if [ -f "$dest/.complete" ] && cmp -s "$dest/.complete" "$lock"; then
    echo "qemu-fetch: $dest is complete ($("$dest/usr/bin/qemu-system-x86_64" --version | head -1))"
    exit 0
fi
. /etc/os-release
if [ "${VERSION_CODENAME:-}" != bookworm ]; then
    echo "qemu-fetch: skipped: $suite is for Debian 12 (this is ${PRETTY_NAME:-unknown}); use PRISM_QEMU=/path/to/qemu-system-x86_64 for a second QEMU" >&2
    exit 0
fi
[ -f "$keyring" ] || { echo "qemu-fetch: $keyring missing (package debian-archive-keyring)" >&2; exit 1; }

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
# The mirror the system uses for bookworm, from where apt would fetch a
# bookworm package.
mirror() { apt-get --print-uris download seabios 2>/dev/null | sed -n "s|^'\(.*\)/pool/main/.*|\1|p" | head -1; }
uri=$(mirror)
if [ -z "$uri" ]; then
    $sudo apt-get update -qq
    uri=$(mirror)
fi
[ -n "$uri" ] || { echo "qemu-fetch: cannot tell which Debian mirror apt uses" >&2; exit 1; }

work=$(realpath -m "$dest").part
rm -rf "$work"
mkdir -p "$work/.apt/lists/partial" "$work/.apt/cache/archives/partial" "$work/.apt/parts" "$work/.apt/sources.d" "$work/.apt/prefs" "$work/.debs"
echo "deb [signed-by=$keyring] $uri $suite main" > "$work/.apt/sources.list"
apt_opts=(
    -o "Dir::Etc::SourceList=$work/.apt/sources.list" -o "Dir::Etc::SourceParts=$work/.apt/sources.d"
    -o "Dir::Etc::Parts=$work/.apt/parts" -o "Dir::Etc::PreferencesParts=$work/.apt/prefs"
    -o "Dir::State::Lists=$work/.apt/lists" -o "Dir::Cache=$work/.apt/cache"
    -o APT::Sandbox::User=root
)
echo "qemu-fetch: $suite from $uri into $dest"
apt-get -qq "${apt_opts[@]}" update
pkgs=()
while read -r pkg ver sum; do
    case "$pkg" in "" | "#"*) continue ;; esac
    pkgs+=("$pkg=$ver")
done < "$lock"
(cd "$work/.debs" && apt-get -qq "${apt_opts[@]}" download "${pkgs[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)

while read -r pkg ver sum; do
    case "$pkg" in "" | "#"*) continue ;; esac
    deb=$(ls "$work/.debs/${pkg}_"*.deb 2>/dev/null | head -1)
    [ -n "$deb" ] || { echo "qemu-fetch: $pkg $ver was not downloaded" >&2; exit 1; }
    got=$(sha256sum "$deb" | cut -d' ' -f1)
    if [ "$got" != "$sum" ]; then
        echo "qemu-fetch: $deb: sha256 $got, expected $sum (qemu-fetch.lock)" >&2
        exit 1
    fi
    [ "$(dpkg-deb -f "$deb" Version)" = "$ver" ] || { echo "qemu-fetch: $deb is not version $ver" >&2; exit 1; }
    dpkg -x "$deb" "$work"
done < "$lock"

bin=$work/usr/bin/qemu-system-x86_64
missing=()
for dep in $(dpkg-deb -f "$work"/.debs/qemu-system-x86_*.deb Depends | tr ',' '\n' | sed 's/(.*//; s/|.*//; s/ //g' | grep '^lib'); do
    dpkg-query -W -f='${Status}' "$dep" 2>/dev/null | grep -q "install ok installed" || missing+=("$dep")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "qemu-fetch: installing the libraries it links from Debian 12: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ldd "$bin" | grep -q 'not found'; then
    echo "qemu-fetch: $bin needs libraries this system lacks:" >&2
    ldd "$bin" | grep 'not found' >&2
    exit 1
fi
# Keep QEMU 10 away from the system QEMU's loadable modules.
mkdir -p "$work/usr/lib/x86_64-linux-gnu/qemu"
"$bin" --version | head -1 >/dev/null
cp "$lock" "$work/.complete"
rm -rf "$dest" "$work/.apt" "$work/.debs"
mv "$work" "$dest"
echo "qemu-fetch: ok ($("$dest/usr/bin/qemu-system-x86_64" --version | head -1))"
