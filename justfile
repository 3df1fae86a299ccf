# Prism: the single entry point. `just --list` shows every recipe.

target := "x86_64-unknown-none"
build_dir := "build"
# The workload config whose partitions sigma0 enforces (compacted into build/modules/config).
config := "workloads/configs/default.toml"
prism := "cargo run --quiet --release -p wcet-reports --bin prism --"

# Show the recipes.
default:
    @just --list

# Install what the build and QEMU runs need (idempotent).
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    rustup target list --installed | grep -qx {{target}} || rustup target add {{target}}
    rustup component list --installed | grep -q '^clippy' || rustup component add clippy rustfmt
    need=()
    command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
    command -v grub-mkrescue >/dev/null || need+=(grub-common)
    [ -d /usr/lib/grub/i386-pc ] || need+=(grub-pc-bin)
    [ -d /usr/lib/grub/x86_64-efi ] || need+=(grub-efi-amd64-bin)
    command -v xorriso >/dev/null || need+=(xorriso)
    command -v mformat >/dev/null || need+=(mtools)
    [ -f /usr/share/ovmf/OVMF.fd ] || need+=(ovmf)
    if [ ${#need[@]} -gt 0 ]; then
        echo "setup: installing ${need[*]}"
        sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    echo "setup: ok ($(qemu-system-x86_64 --version | head -1))"

# Build the kernel, the test kernel and the boot modules into build/.
build:
    #!/usr/bin/env bash
    set -euo pipefail
    rustup target list --installed | grep -qx {{target}} || rustup target add {{target}}
    out=target/{{target}}/release
    mkdir -p {{build_dir}}/modules
    cargo build --release --target {{target}} -p kernel --features ktest
    cp $out/kernel {{build_dir}}/kernel-test.elf
    cargo build --release --target {{target}} -p kernel -p sigma0
    cp $out/kernel {{build_dir}}/kernel.elf
    cp $out/sigma0 {{build_dir}}/modules/sigma0
    cargo build --release -p cache-model
    cp target/release/libcache_model.so {{build_dir}}/libcache_model.so
    {{prism}} config {{config}} -o {{build_dir}}/modules/config
    echo "build: {{build_dir}}/kernel.elf, {{build_dir}}/kernel-test.elf, {{build_dir}}/modules/"

# Boot the kernel with sigma0 and show the serial console (quit: Ctrl-A X).
run *ARGS: setup build
    {{prism}} run {{ARGS}}

# Host unit/property tests, then the in-guest suite under QEMU TCG.
test: setup build _iso-image
    cargo test --workspace --quiet
    {{prism}} test --iso {{build_dir}}/prism.iso

# fmt and clippy on every crate, host and bare-metal.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --quiet -- -D warnings
    cargo clippy --target {{target}} -p kernel -p sigma0 -p abi -p user-rt -p cache-color -p fuzz --quiet -- -D warnings
    cargo clippy --target {{target}} -p kernel --features ktest --quiet -- -D warnings

# A bootable GRUB ISO (BIOS, and UEFI where grub-efi-amd64-bin is present), checked by booting it.
iso: _iso-image
    {{prism}} boot-iso {{build_dir}}/prism.iso

_iso-image: setup build
    #!/usr/bin/env bash
    set -euo pipefail
    rm -rf {{build_dir}}/iso && mkdir -p {{build_dir}}/iso/boot/grub
    cp {{build_dir}}/kernel.elf {{build_dir}}/iso/boot/kernel.elf
    cp {{build_dir}}/modules/sigma0 {{build_dir}}/iso/boot/sigma0
    cp {{build_dir}}/modules/config {{build_dir}}/iso/boot/config
    cp kernel/grub.cfg {{build_dir}}/iso/boot/grub/grub.cfg
    grub-mkrescue -o {{build_dir}}/prism.iso {{build_dir}}/iso 2> {{build_dir}}/grub-mkrescue.log \
        || { cat {{build_dir}}/grub-mkrescue.log; exit 1; }
    echo "iso: {{build_dir}}/prism.iso ($(du -h {{build_dir}}/prism.iso | cut -f1))"

# QEMU halted with a GDB stub on :1234; prints the gdb command line.
debug: setup build
    {{prism}} debug

# Print which accelerator runs would use (KVM only if it is real hardware virtualization).
accel: setup build
    {{prism}} accel

# Kernel primitives (TSC cycles under TCG, guest instructions under TCG+icount), then colored frame-pool alloc/free on the host (criterion).
bench: setup build
    {{prism}} bench
    cargo bench -q -p cache-color --bench pool

# Run the WCET scenarios and write the report (the pipeline is not built yet).
wcet: setup build
    {{prism}} wcet

# Fuzz the kernel from ring 3 for SECONDS (default 60); `just fuzz --replay SEED` reruns a failure; `just fuzz --help`-style options: --seed S, --calls N, --trace-from N, --verbose.
fuzz *ARGS: setup build
    {{prism}} fuzz {{ARGS}}
