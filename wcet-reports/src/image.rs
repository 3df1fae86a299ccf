//! A system image: the boot modules one compact system description needs,
//! in boot order, and the kernel command line it asks for.
//!
//! The kernel starts `sigma0` and `roottask`; the root task reads the
//! `system` module (the compact description) and loads every binary it
//! names from the module of that name. So an image is: `sigma0`,
//! `roottask`, `system`, then each binary once, all from `build/modules/`
//! except the description itself. QEMU (`-initrd`) and GRUB (`module`)
//! name a module by its file name, hence a description is always written
//! to a file called `system` (in a folder of its own).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// What one description boots.
#[derive(Clone, Debug)]
pub struct Image {
    /// Boot modules in order (paths; their file names are the module names).
    pub modules: Vec<PathBuf>,
    /// The kernel command line (`kmem=` from the description).
    pub cmdline: String,
    /// The binaries the description names, once each.
    pub binaries: Vec<String>,
}

/// The image of compact description `system` (a file called `system`),
/// with binaries from `build/modules`. Every binary must exist.
pub fn of(build: &Path, system: &Path) -> Result<Image> {
    if system.file_name().and_then(|n| n.to_str()) != Some("system") {
        bail!("{}: a compact description must be in a file called `system` (its module name)", system.display());
    }
    let text = std::fs::read_to_string(system).with_context(|| format!("reading {}", system.display()))?;
    let sys = sysdesc::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", system.display()))?;
    let modules_dir = build.join("modules");
    let mut binaries: Vec<String> = Vec::new();
    for t in sys.tasks() {
        if !binaries.iter().any(|b| b == t.bin) {
            binaries.push(t.bin.to_string());
        }
    }
    let mut modules = vec![modules_dir.join("sigma0"), modules_dir.join("roottask"), system.to_path_buf()];
    for b in &binaries {
        let p = modules_dir.join(b);
        if !p.exists() {
            bail!("{}: binary `{b}` is not in {} (run `just build`)", system.display(), modules_dir.display());
        }
        modules.push(p);
    }
    for m in &modules[..2] {
        if !m.exists() {
            bail!("{} missing (run `just build`)", m.display());
        }
    }
    if modules.len() > abi::kip::MAX_MODULES {
        bail!(
            "{}: {} boot modules, the kernel takes at most {}",
            system.display(),
            modules.len(),
            abi::kip::MAX_MODULES
        );
    }
    let kmem = sys.kernel().kmem >> 20;
    let cmdline = if kmem > 0 { format!("kmem={kmem}") } else { String::new() };
    Ok(Image { modules, cmdline, binaries })
}

impl Image {
    /// The modules as QEMU `-initrd` entries.
    pub fn module_args(&self) -> Vec<String> {
        self.modules.iter().map(|p| p.display().to_string()).collect()
    }

    /// A GRUB menu entry that boots this image from `/boot/` of an ISO
    /// whose files are named like the modules.
    pub fn grub_entry(&self, title: &str) -> String {
        let mut s = format!("menuentry \"{title}\" {{\n    multiboot /boot/kernel.elf {}\n", self.cmdline);
        for m in &self.modules {
            let name = m.file_name().and_then(|n| n.to_str()).unwrap_or("?");
            s.push_str(&format!("    module /boot/{name} {name}\n"));
        }
        s.push_str("    boot\n}\n");
        s
    }
}

/// Writes a bootable GRUB ISO (BIOS, and UEFI where GRUB's EFI files are
/// installed) of `img` to `out`: the kernel and every module under
/// `/boot/`, and `kernel/grub.cfg` with the image's menu entry appended.
pub fn write_iso(build: &Path, img: &Image, grub_cfg: &Path, out: &Path) -> Result<()> {
    let dir = build.join("iso");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("boot/grub"))?;
    std::fs::copy(build.join("kernel.elf"), dir.join("boot/kernel.elf")).context("copying kernel.elf")?;
    for m in &img.modules {
        let name = m.file_name().context("module without a file name")?;
        std::fs::copy(m, dir.join("boot").join(name)).with_context(|| format!("copying {}", m.display()))?;
    }
    let mut cfg = std::fs::read_to_string(grub_cfg).with_context(|| format!("reading {}", grub_cfg.display()))?;
    cfg.push_str(&img.grub_entry("Prism microkernel"));
    std::fs::write(dir.join("boot/grub/grub.cfg"), cfg)?;
    let log = build.join("grub-mkrescue.log");
    let o = std::process::Command::new("grub-mkrescue")
        .arg("-o")
        .arg(out)
        .arg(&dir)
        .output()
        .context("running grub-mkrescue (just setup installs it)")?;
    std::fs::write(&log, &o.stderr)?;
    if !o.status.success() {
        bail!("grub-mkrescue failed ({}):\n{}", o.status, String::from_utf8_lossy(&o.stderr));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYS: &str = "prism-system 1\nsystem name=t scenario=base shared_colors=0\nkernel kmem=33554432 timeslice=1\n\
        task name=a bin=one role=test pager=root prio=1 mcp=0 control=0 handler=root timeslice=0 budget=0 period=0 heap=0 stack=0\n\
        task name=b bin=one role=test pager=root prio=1 mcp=0 control=0 handler=root timeslice=0 budget=0 period=0 heap=0 stack=0\n\
        task name=c bin=two role=test pager=root prio=1 mcp=0 control=0 handler=root timeslice=0 budget=0 period=0 heap=0 stack=0\n";

    fn build() -> tempdir::Dir {
        let d = tempdir::Dir::new();
        std::fs::create_dir_all(d.0.join("modules")).unwrap();
        for m in ["sigma0", "roottask", "one", "two"] {
            std::fs::write(d.0.join("modules").join(m), b"x").unwrap();
        }
        std::fs::create_dir_all(d.0.join("img")).unwrap();
        std::fs::write(d.0.join("img/system"), SYS).unwrap();
        d
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let p = std::env::temp_dir().join(format!(
                    "prism-image-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                let _ = std::fs::remove_dir_all(&p);
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn modules_in_boot_order_binaries_once_and_kmem_on_the_command_line() {
        let d = build();
        let img = of(&d.0, &d.0.join("img/system")).unwrap();
        let names: Vec<_> = img.modules.iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect();
        assert_eq!(names, ["sigma0", "roottask", "system", "one", "two"]);
        assert_eq!(img.cmdline, "kmem=32");
        let g = img.grub_entry("x");
        assert!(g.contains("multiboot /boot/kernel.elf kmem=32") && g.contains("module /boot/system system"), "{g}");
    }

    #[test]
    fn a_missing_binary_or_a_misnamed_description_is_an_error() {
        let d = build();
        std::fs::remove_file(d.0.join("modules/two")).unwrap();
        let e = of(&d.0, &d.0.join("img/system")).unwrap_err().to_string();
        assert!(e.contains("binary `two`"), "{e}");
        std::fs::write(d.0.join("img/other"), SYS).unwrap();
        let e = of(&d.0, &d.0.join("img/other")).unwrap_err().to_string();
        assert!(e.contains("called `system`"), "{e}");
    }
}
