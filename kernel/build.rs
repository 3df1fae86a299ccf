//! Links the bare-metal kernel with its linker script; host builds (unit
//! tests) link normally.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed=linker.ld");
    if std::env::var("TARGET").unwrap() == "x86_64-unknown-none" {
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
        // defmt's interned-string table (its build script provides defmt.x).
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    }
}
