//! Running the kernel under QEMU: the one place that knows QEMU's flags and
//! how the accelerator is chosen.
//!
//! Accelerator: KVM only when `/dev/kvm` opens *and* a probe boot under KVM
//! reaches the root task's first line (so `syscall` and ring 3 work). A
//! software hypervisor that exposes `/dev/kvm` but runs ring 0 emulated and
//! breaks `syscall` fails the probe and we use TCG. `PRISM_ACCEL=kvm|tcg`
//! overrides; the probe's verdict is cached in `build/accel`.
//!
//! QEMU: the system's `qemu-system-x86_64`, or the binary `PRISM_QEMU`
//! names ([`Qemu`]); its version (from `--version`) goes into every run's
//! output.

use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A QEMU to run: an installed `qemu-system-x86_64` (by name on `PATH` or
/// by path), or one unpacked from Debian packages with `dpkg -x` (as
/// `just setup` does into `build/qemu-10`), which brings its own firmware
/// and option ROMs (`-L`) and must not load the system QEMU's modules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Qemu {
    pub binary: PathBuf,
    /// `-L` folders, searched before QEMU's built-in ones.
    pub data_dirs: Vec<PathBuf>,
    /// `QEMU_MODULE_DIR` for an unpacked tree.
    pub module_dir: Option<PathBuf>,
}

/// The system's QEMU, by name.
pub const SYSTEM_QEMU: &str = "qemu-system-x86_64";

impl Qemu {
    /// The QEMU at `binary`. A binary at `ROOT/usr/bin/` of a tree that also
    /// has `ROOT/usr/share/qemu` (ROOT not `/`) is an unpacked package tree.
    pub fn at(binary: impl Into<PathBuf>) -> Qemu {
        let binary = binary.into();
        let root = binary
            .canonicalize()
            .ok()
            .and_then(|b| Some(b.parent()?.parent()?.parent()?.to_path_buf()))
            .filter(|r| r != Path::new("/") && r.join("usr/share/qemu").is_dir());
        match root {
            Some(r) => Qemu {
                binary,
                data_dirs: ["usr/share/qemu", "usr/share/seabios"]
                    .iter()
                    .map(|d| r.join(d))
                    .filter(|d| d.is_dir())
                    .collect(),
                module_dir: Some(r.join("usr/lib/x86_64-linux-gnu/qemu")),
            },
            None => Qemu { binary, data_dirs: Vec::new(), module_dir: None },
        }
    }

    /// `PRISM_QEMU` if set, else the system's QEMU.
    pub fn selected() -> Qemu {
        match std::env::var_os("PRISM_QEMU") {
            Some(p) if !p.is_empty() => Qemu::at(p),
            _ => Qemu::at(SYSTEM_QEMU),
        }
    }

    /// The first line of `--version`, e.g. `QEMU emulator version 10.0.2
    /// (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)`; asked once per binary.
    pub fn version_line(&self) -> Result<String> {
        static SEEN: Mutex<BTreeMap<PathBuf, String>> = Mutex::new(BTreeMap::new());
        if let Some(v) = SEEN.lock().unwrap().get(&self.binary) {
            return Ok(v.clone());
        }
        let out = self.command().arg("--version").output().with_context(|| {
            format!(
                "cannot run {} (run `just setup`, or set PRISM_QEMU to a qemu-system-x86_64)",
                self.binary.display()
            )
        })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().next().unwrap_or("").trim().to_string();
        if !out.status.success() || parse_version(&line).is_none() {
            bail!("{} --version did not name a QEMU version: {line:?}", self.binary.display());
        }
        SEEN.lock().unwrap().insert(self.binary.clone(), line.clone());
        Ok(line)
    }

    /// `major.minor.micro`, e.g. `10.0.2`.
    pub fn version(&self) -> Result<String> {
        let line = self.version_line()?;
        parse_version(&line).ok_or_else(|| anyhow!("no version in {line:?}"))
    }

    /// For output lines: `QEMU 10.0.2 (build/qemu-10/usr/bin/qemu-system-x86_64)`.
    pub fn describe(&self) -> String {
        match self.version() {
            Ok(v) => format!("QEMU {v} ({})", self.binary.display()),
            Err(e) => format!("QEMU of unknown version ({e:#})"),
        }
    }

    /// Arguments this QEMU needs on every run: its `-L` folders, and for an
    /// unpacked tree no audio backend (QEMU would otherwise probe for the
    /// audio modules, which the tree lacks, in the system QEMU's module
    /// folder, and warn that those are of another build).
    pub fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        for d in &self.data_dirs {
            a.extend(["-L".to_string(), d.display().to_string()]);
        }
        if self.module_dir.is_some() {
            a.extend(["-audiodev", "none,id=noaudio", "-machine", "pcspk-audiodev=noaudio"].map(String::from));
        }
        a
    }

    /// A command running this QEMU (with its module folder, if it has one).
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.binary);
        if let Some(d) = &self.module_dir {
            c.env("QEMU_MODULE_DIR", d);
        }
        c
    }
}

/// `10.0.2` from `QEMU emulator version 10.0.2 (Debian ...)`.
pub fn parse_version(line: &str) -> Option<String> {
    let v = line.strip_prefix("QEMU emulator version ")?.split_whitespace().next()?;
    let ok = v.split('.').count() >= 2 && v.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    ok.then(|| v.to_string())
}

/// QEMU exit status for a guest that wrote `code` to `isa-debug-exit`.
pub const fn debug_exit_status(code: u32) -> i32 {
    ((code << 1) | 1) as i32
}
/// The guest's pass and fail codes (see the kernel's `ktest` module).
pub const EXIT_PASS: i32 = debug_exit_status(0x10);
pub const EXIT_FAIL: i32 = debug_exit_status(0x11);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualization: real caches, real TSC, PMCs where exposed.
    Kvm,
    /// Plain TCG: proves the pipeline, never the cache effect.
    Tcg,
    /// TCG with `-icount` (deterministic; guest TSC counts instructions).
    TcgIcount,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
            Accel::TcgIcount => "TCG+icount",
        })
    }
}

impl Accel {
    fn args(self) -> Vec<String> {
        let v: &[&str] = match self {
            Accel::Kvm => &["-enable-kvm", "-cpu", "host"],
            Accel::Tcg => &["-accel", "tcg", "-cpu", "max"],
            // Byte-identical runs: instruction-counted time, fixed seed and
            // a virtual RTC with a fixed base.
            Accel::TcgIcount => &[
                "-accel",
                "tcg",
                "-cpu",
                "max",
                "-icount",
                "shift=0,sleep=off",
                "-seed",
                "1",
                "-rtc",
                "clock=vm,base=2024-01-01T00:00:00",
            ],
        };
        v.iter().map(|s| s.to_string()).collect()
    }
}

/// What to boot and how.
#[derive(Clone, Debug)]
pub struct Boot {
    pub kernel: PathBuf,
    /// Kernel command line (`-append`).
    pub cmdline: String,
    /// Boot modules, each `path [args]`; the first is the root task.
    pub modules: Vec<String>,
    pub accel: Accel,
    pub memory_mib: u32,
    /// Extra QEMU arguments (plugins, gdb stub).
    pub extra: Vec<String>,
    /// Boot this ISO through its boot loader instead of `-kernel`.
    pub cdrom: Option<PathBuf>,
    /// Where COM1 (the plain-text console) goes, as QEMU's `-serial` value.
    pub console: String,
    /// Where COM2 (the kernel's defmt frames) goes; `None` drops them.
    pub defmt_out: Option<PathBuf>,
    /// Which QEMU runs it ([`Qemu::selected`] unless changed).
    pub qemu: Qemu,
}

impl Boot {
    pub fn new(kernel: impl Into<PathBuf>, accel: Accel) -> Boot {
        Boot {
            kernel: kernel.into(),
            cmdline: String::new(),
            modules: Vec::new(),
            accel,
            memory_mib: 128,
            extra: Vec::new(),
            cdrom: None,
            console: "mon:stdio".into(),
            defmt_out: None,
            qemu: Qemu::selected(),
        }
    }

    /// The full QEMU command line.
    pub fn args(&self) -> Vec<String> {
        let mut a = self.accel.args();
        a.extend(self.qemu.args());
        a.extend(
            ["-m", &format!("{}M", self.memory_mib), "-display", "none", "-no-reboot", "-monitor", "none"]
                .map(String::from),
        );
        a.extend(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"].map(String::from));
        a.extend(["-serial".to_string(), self.console.clone()]);
        if let Some(p) = &self.defmt_out {
            a.extend(["-serial".to_string(), format!("file:{}", p.display())]);
        }
        if let Some(iso) = &self.cdrom {
            a.extend(["-cdrom".to_string(), iso.display().to_string(), "-boot".into(), "d".into()]);
            a.extend(self.extra.iter().cloned());
            return a;
        }
        a.push("-kernel".into());
        a.push(self.kernel.display().to_string());
        if !self.cmdline.is_empty() {
            a.push("-append".into());
            a.push(self.cmdline.clone());
        }
        if !self.modules.is_empty() {
            // QEMU separates modules with commas; a module's own arguments
            // follow its path after a space.
            a.push("-initrd".into());
            a.push(self.modules.join(","));
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// Switches to the deterministic `model` mode: TCG with `-icount` and
    /// the cache-model plugin writing one CSV row per job to `out`, whose
    /// first line names this QEMU's version. The plugin reads
    /// guest-physical addresses, which QEMU 7.2 reports correctly only
    /// below the PCI hole, so memory stays at most 2 GiB.
    pub fn with_cache_model(&mut self, plugin: &Path, profile: &str, out: &Path) {
        self.accel = Accel::TcgIcount;
        self.memory_mib = self.memory_mib.min(2048);
        let qemu = self.qemu.version().unwrap_or_else(|_| "unknown".into());
        self.extra.extend([
            "-smp".to_string(),
            "1".into(),
            "-plugin".into(),
            format!("file={},profile={profile},out={},qemu={qemu}", plugin.display(), out.display()),
        ]);
    }

    pub fn command(&self) -> Command {
        let mut c = self.qemu.command();
        c.args(self.args());
        c
    }

    /// Boots non-interactively: serial to a pipe, killed after `timeout`.
    /// `stop_when` may end the run early when the output so far satisfies it.
    pub fn run_captured(&self, timeout: Duration, stop_when: Option<&dyn Fn(&str) -> bool>) -> Result<Outcome> {
        let mut this = self.clone();
        this.console = "stdio".into();
        let mut cmd = this.command();
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let start = Instant::now();
        let mut child =
            cmd.spawn().with_context(|| format!("cannot start {} (run `just setup`)", self.qemu.binary.display()))?;
        let out = Arc::new(Mutex::new(Vec::<(Duration, String)>::new()));
        let reader = spawn_line_reader(&mut child, out.clone(), start);
        let mut err = String::new();
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break Some(s);
            }
            let stop = stop_when.is_some_and(|f| f(&join_lines(&out.lock().unwrap())));
            if start.elapsed() > timeout || stop {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let _ = reader.join();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let lines = std::mem::take(&mut *out.lock().unwrap());
        Ok(Outcome {
            status: status.and_then(|s| s.code()),
            timed_out: status.is_none(),
            lines,
            stderr: err,
            elapsed: start.elapsed(),
        })
    }
}

fn join_lines(l: &[(Duration, String)]) -> String {
    l.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>().join("\n")
}

fn spawn_line_reader(
    child: &mut Child,
    out: Arc<Mutex<Vec<(Duration, String)>>>,
    start: Instant,
) -> std::thread::JoinHandle<()> {
    let mut stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut line = Vec::new();
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            for &b in &buf[..n] {
                match b {
                    b'\n' => {
                        let s = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
                        out.lock().unwrap().push((start.elapsed(), s));
                        line.clear();
                    }
                    _ => line.push(b),
                }
            }
        }
        if !line.is_empty() {
            out.lock().unwrap().push((start.elapsed(), String::from_utf8_lossy(&line).to_string()));
        }
    })
}

/// Decodes the defmt frames the kernel `elf` wrote to COM2 (`bin`) into
/// text lines (`tsc level message`; timestamps are raw TSC values).
pub fn decode_defmt(elf: &Path, bin: &Path) -> Result<Vec<String>> {
    let elf_bytes = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    let table = defmt_decoder::Table::parse(&elf_bytes)?.context("the kernel ELF has no defmt table")?;
    let data = std::fs::read(bin).with_context(|| format!("reading {}", bin.display()))?;
    let mut dec = table.new_stream_decoder();
    dec.received(&data);
    let mut lines = Vec::new();
    loop {
        match dec.decode() {
            Ok(f) => lines.push(format!(
                "{} {} {}",
                f.display_timestamp().map(|t| t.to_string()).unwrap_or_default(),
                f.level().map(|l| l.as_str()).unwrap_or("print"),
                f.display_message()
            )),
            Err(defmt_decoder::DecodeError::UnexpectedEof) => break,
            Err(defmt_decoder::DecodeError::Malformed) => lines.push("(malformed defmt frame skipped)".into()),
        }
    }
    Ok(lines)
}

/// What a captured boot produced.
#[derive(Debug)]
pub struct Outcome {
    /// QEMU's exit status; `None` if we killed it.
    pub status: Option<i32>,
    pub timed_out: bool,
    /// Serial lines with the time since QEMU started.
    pub lines: Vec<(Duration, String)>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn text(&self) -> String {
        join_lines(&self.lines)
    }

    /// When the first line containing `needle` arrived.
    pub fn time_of(&self, needle: &str) -> Option<Duration> {
        self.lines.iter().find(|(_, l)| l.contains(needle)).map(|(t, _)| *t)
    }

    /// The last `n` lines, for failure reports.
    pub fn tail(&self, n: usize) -> String {
        let s = self.lines.len().saturating_sub(n);
        join_lines(&self.lines[s..])
    }
}

/// Picks the accelerator for `kernel` + `root` (see the module doc).
pub fn choose_accel(kernel: &Path, root: &str, cache: &Path) -> Result<(Accel, String)> {
    match std::env::var("PRISM_ACCEL").ok().as_deref() {
        Some("kvm") => return Ok((Accel::Kvm, "PRISM_ACCEL=kvm".into())),
        Some("tcg") => return Ok((Accel::Tcg, "PRISM_ACCEL=tcg".into())),
        Some(other) if !other.is_empty() => bail!("PRISM_ACCEL must be kvm or tcg, not {other:?}"),
        _ => {}
    }
    if std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_err() {
        return Ok((Accel::Tcg, "/dev/kvm cannot be opened".into()));
    }
    if let Ok(s) = std::fs::read_to_string(cache) {
        let (a, why) = s.trim().split_once(' ').unwrap_or((s.trim(), ""));
        match a {
            "kvm" => return Ok((Accel::Kvm, format!("cached probe: {why}"))),
            "tcg" => return Ok((Accel::Tcg, format!("cached probe: {why}"))),
            _ => {}
        }
    }
    let mut probe = Boot::new(kernel, Accel::Kvm);
    probe.modules.push(root.to_string());
    let o = probe.run_captured(Duration::from_secs(4), Some(&|s: &str| s.contains("sigma0: root pager up")))?;
    let (accel, why) = match o.time_of("sigma0: root pager up") {
        Some(t) if t < Duration::from_secs(2) => {
            (Accel::Kvm, format!("KVM probe reached ring 3 in {:.2} s", t.as_secs_f64()))
        }
        Some(t) => {
            (Accel::Tcg, format!("KVM probe took {:.1} s to reach ring 3 (software hypervisor)", t.as_secs_f64()))
        }
        None => (Accel::Tcg, "KVM probe did not reach ring 3 (no hardware virtualization)".into()),
    };
    if let Some(dir) = cache.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tag = if accel == Accel::Kvm { "kvm" } else { "tcg" };
    let _ = std::fs::write(cache, format!("{tag} {why}\n"));
    Ok((accel, why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_has_modules_append_and_exit_device() {
        let mut b = Boot::new("build/kernel.elf", Accel::TcgIcount);
        b.cmdline = "test=suite".into();
        b.modules = vec!["build/sigma0 test".into(), "build/x".into()];
        let a = b.args();
        let pos = |s: &str| a.iter().position(|x| x == s).unwrap();
        assert_eq!(a[pos("-initrd") + 1], "build/sigma0 test,build/x");
        assert_eq!(a[pos("-append") + 1], "test=suite");
        assert_eq!(a[pos("-icount") + 1], "shift=0,sleep=off");
        assert!(a.iter().any(|x| x.starts_with("isa-debug-exit")));
        assert_eq!(EXIT_PASS, 33);
        assert_eq!(EXIT_FAIL, 35);
    }

    #[test]
    fn qemu_versions_parse() {
        let v = parse_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)");
        assert_eq!(v.as_deref(), Some("10.0.2"));
        assert_eq!(
            parse_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)").as_deref(),
            Some("7.2.22")
        );
        assert_eq!(parse_version("QEMU emulator version 9.1").as_deref(), Some("9.1"));
        assert_eq!(parse_version("qemu-img version 7.2.0"), None);
        assert_eq!(parse_version("QEMU emulator version x.y"), None);
    }

    #[test]
    fn an_unpacked_tree_brings_its_data_and_module_folders() {
        let root = std::env::temp_dir().join(format!("prism-qemu-tree-{}", std::process::id()));
        for d in ["usr/bin", "usr/share/qemu", "usr/share/seabios"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let bin = root.join("usr/bin/qemu-system-x86_64");
        std::fs::write(&bin, "").unwrap();
        let q = Qemu::at(&bin);
        let root = root.canonicalize().unwrap();
        assert_eq!(q.data_dirs, vec![root.join("usr/share/qemu"), root.join("usr/share/seabios")]);
        assert_eq!(q.module_dir, Some(root.join("usr/lib/x86_64-linux-gnu/qemu")));
        let mut b = Boot::new("k.elf", Accel::Tcg);
        b.qemu = q;
        let a = b.args();
        assert_eq!(a.iter().filter(|x| *x == "-L").count(), 2);
        assert_eq!(a[a.iter().position(|x| x == "-L").unwrap() + 1], root.join("usr/share/qemu").display().to_string());
        // An installed QEMU (by name, or under /usr/bin) keeps QEMU's own folders.
        assert_eq!(Qemu::at(SYSTEM_QEMU), Qemu { binary: SYSTEM_QEMU.into(), data_dirs: vec![], module_dir: None });
        assert!(Qemu::at("/usr/bin/qemu-system-x86_64").data_dirs.is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
