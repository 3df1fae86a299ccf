# Prism: the single entry point. `just --list` shows every recipe.

target := "x86_64-unknown-none"
# The static Linux benchmark (`bench-linux`, the /init `just bench` boots Linux with).
linux_target := "x86_64-unknown-linux-musl"
build_dir := "build"
# The system description `just build` writes (scenario `scenario`) to
# build/images/default/system: the image `just run` boots.
description := "workloads/configs/default.toml"
scenario := "partitioned"
# The bare-metal crates with binaries, and every binary they build:
# `build/modules/` holds them (the boot modules a system description may name).
bare_crates := "sigma0 roottask test-task test-driver fuzzer rt-pager ts-pager ts-load pager-test isolation-test rt-workloads ts-loads"
modules := "sigma0 roottask test-task test-driver bench fuzzer rt-pager ts-pager ts-load pager-test isolation-test"
# The system image `just iso` writes (a compact description, `system`).
iso_system := build_dir / "images/default/system"
prism := "cargo run --quiet --release -p wcet-reports --bin prism --"
# The second QEMU `just setup` fetches (model mode is tested under both).
qemu10 := build_dir / "qemu-10/usr/bin/qemu-system-x86_64"

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
    # report.html is checked in a headless browser by `just test`
    command -v chromium >/dev/null || need+=(chromium)
    if [ ${#need[@]} -gt 0 ]; then
        echo "setup: installing ${need[*]}"
        sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    # A second, current QEMU beside the system's (model mode is tested under both).
    bash wcet-reports/cache-model/qemu-fetch.sh {{build_dir}}/qemu-10
    # `just bench`: Debian's stock kernel (pinned), and the target its static benchmark is built for.
    bash bench-linux/kernel-fetch.sh {{build_dir}}/linux
    rustup target list --installed | grep -qx {{linux_target}} || rustup target add {{linux_target}} || echo "setup: no {{linux_target}} target: just bench will run Prism's side only"
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
    cargo build --release --target {{target}} -p kernel $(printf -- '-p %s ' {{bare_crates}})
    cp $out/kernel {{build_dir}}/kernel.elf
    # The overflow-checked kernels (profile `checked`: overflow checks and
    # debug assertions), which `just test` runs the in-guest suite on too:
    # build/checked/ holds them beside links to everything else.
    mkdir -p {{build_dir}}/checked
    cargo build --profile checked --target {{target}} -p kernel --features ktest
    cp target/{{target}}/checked/kernel {{build_dir}}/checked/kernel-test.elf
    cargo build --profile checked --target {{target}} -p kernel
    cp target/{{target}}/checked/kernel {{build_dir}}/checked/kernel.elf
    for f in modules libcache_model.so libprofile_plugin.so; do ln -sfn ../$f {{build_dir}}/checked/$f; done
    # Boot modules without debug info (the boot loader copies every byte;
    # target/ keeps the full ELFs for gdb). Every binary of
    # workloads/{rt,ts}/src/bin (the RT workloads and TS loads) is one.
    for m in {{modules}} $(basename -s .rs workloads/rt/src/bin/*.rs workloads/ts/src/bin/*.rs); do
        objcopy --strip-debug $out/$m {{build_dir}}/modules/$m 2>/dev/null || cp $out/$m {{build_dir}}/modules/$m
    done
    cargo build --release -p cache-model -p profile-plugin
    cp target/release/libcache_model.so target/release/libprofile_plugin.so {{build_dir}}/
    # The compact description (a file called `system`, its module name).
    # Binaries not built yet are warnings here; `just validate` makes them errors.
    mkdir -p {{build_dir}}/images/default
    {{prism}} system {{description}} --scenario {{scenario}} -o {{build_dir}}/images/default/system \
        --modules {{build_dir}}/modules --allow-missing-binaries
    echo "build: {{build_dir}}/kernel.elf, {{build_dir}}/kernel-test.elf, {{build_dir}}/modules/"

# Boot the kernel with sigma0 and show the serial console (quit: Ctrl-A X).
run *ARGS: setup build
    {{prism}} run {{ARGS}}

# Host unit/property tests, then the in-guest suite under QEMU TCG (on the production and test kernels, then on their overflow-checked builds).
test: setup build _iso-image
    cargo test --workspace --quiet
    # report.html of a synthetic run, loaded in headless chromium
    cargo test -p wcet-reports --test browser --quiet -- --ignored
    {{prism}} test --iso {{build_dir}}/prism.iso $([ -x {{qemu10}} ] && echo --also-qemu {{qemu10}})
    # The in-guest suite again on the overflow-checked kernels.
    {{prism}} --build-dir {{build_dir}}/checked test

# Check a system description: every error at once, binaries against build/modules (`--scenario NAME` for one).
validate file=description *ARGS:
    {{prism}} validate {{file}} --modules {{build_dir}}/modules {{ARGS}}

# The pagers' in-guest test image: both pagers at once under the test kernel (see pager-tests/run.sh).
test-pagers: setup build
    pager-tests/run.sh

# fmt and clippy on every crate, host and bare-metal.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --quiet -- -D warnings
    # Bare metal: every unsafe block says why it holds, and unsafe fns hold
    # no implicit unsafe block (the kernel also denies both in lib.rs).
    cargo clippy --target {{target}} -p kernel $(printf -- '-p %s ' {{bare_crates}}) -p pager -p elfload -p abi -p user-rt -p cache-color -p sysdesc -p record -p harness -p fuzz --quiet -- -D warnings -D clippy::undocumented_unsafe_blocks -D unsafe_op_in_unsafe_fn
    cargo clippy --target {{target}} -p kernel --features ktest --quiet -- -D warnings

# A bootable GRUB ISO (BIOS, and UEFI where grub-efi-amd64-bin is present), checked by booting it.
iso: _iso-image
    {{prism}} boot-iso {{build_dir}}/prism.iso

_iso-image: setup build
    {{prism}} iso {{iso_system}} -o {{build_dir}}/prism.iso

# QEMU halted with a GDB stub on :1234; prints the gdb command line.
debug: setup build
    {{prism}} debug

# Print which accelerator runs would use (KVM only if it is real hardware virtualization).
accel: setup build
    {{prism}} accel

# Kernel primitives beside the same work on stock Linux under the same QEMU (guest instructions under TCG+icount, TSC cycles under TCG; table + target/bench/<timestamp>/), the cache-model plugin's speed, then colored frame-pool alloc/free on the host (criterion). `just bench --profile NAME`: where one iteration of NAME's instructions go.
bench *ARGS: setup build
    #!/usr/bin/env bash
    set -euo pipefail
    args=({{ARGS}})
    if rustup target list --installed | grep -qx {{linux_target}}; then
        cargo build --release --quiet --target {{linux_target}} -p bench-linux
        objcopy --strip-debug target/{{linux_target}}/release/bench-linux {{build_dir}}/bench-linux
    else
        echo "bench: no {{linux_target}} target (rustup target add {{linux_target}}): Prism's side only"
        args+=(--no-linux)
    fi
    case " ${args[*]-} " in *" --profile "*) {{prism}} bench "${args[@]}"; exit ;; esac
    {{prism}} bench ${args[@]+"${args[@]}"} $([ -x {{qemu10}} ] && echo --also-qemu {{qemu10}})
    cargo bench -q -p cache-color --bench pool

# Run the three scenarios of a description (default: the default one) and write the WCET report; `--mode model|kvm|tcg`, `--synthetic N` for synthetic jobs.
wcet *ARGS: setup build
    {{prism}} wcet {{ARGS}}

# Rebuild the report of a capture or report folder in a new folder (no QEMU).
report DIR *ARGS:
    {{prism}} report {{DIR}} {{ARGS}}

# Two WCET reports side by side.
compare A B:
    {{prism}} compare {{A}} {{B}}

# Fuzz the kernel from ring 3 for SECONDS (default 60); `just fuzz --replay SEED` reruns a failure; `just fuzz --help`-style options: --seed S, --calls N, --trace-from N, --verbose.
fuzz *ARGS: setup build
    {{prism}} fuzz {{ARGS}}
