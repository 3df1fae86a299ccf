//! sigma0's address space is idempotent over physical memory (virtual =
//! physical for RAM and boot modules), so its own image must sit where no
//! RAM it hands out or module it reads is likely to be: at 1 GiB, above
//! the low memory where boot loaders put the kernel and the modules, and
//! below 2 GiB as the kernel code model requires.
fn main() {
    if std::env::var("TARGET").unwrap() == "x86_64-unknown-none" {
        println!("cargo:rustc-link-arg-bins=--image-base=0x40000000");
    }
}
