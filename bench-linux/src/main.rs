//! The Linux side of `just bench`: the work of Prism's `bench` task
//! (`kernel/tests/driver/src/bin/bench.rs`), done the Linux way, so that a
//! table can put the two side by side.
//!
//! `prism bench` builds this program statically for
//! `x86_64-unknown-linux-musl`, makes it the `/init` of a tiny initramfs
//! and boots Debian's stock kernel with it under the same QEMU binary, CPU
//! model, memory and accelerator flags as Prism (`wcet-reports/src/linux.rs`).
//! As process 1 it mounts `/proc` and `/sys`, prints what it runs on, runs
//! every benchmark, prints `bench done` and powers the machine off. Run by
//! hand on any Linux (not as process 1) it does the same and exits; the
//! environment variables `BENCH_ROUNDS` and `BENCH_BIG_ROUNDS` shorten it.
//!
//! # Method (the same as the bench task's)
//!
//! Every iteration is bracketed by [`abi::bench::tsc_start`] and
//! [`abi::bench::tsc_end`], the very instruction sequences Prism's task
//! uses; under `-icount shift=0` the difference is guest instructions.
//! [`WARMUP`] untimed iterations come first; then `BENCH_ROUNDS` (10,000)
//! timed ones, or `BENCH_BIG_ROUNDS` (200) for the 2 and 4 MiB operations,
//! whose every iteration maps or fills hundreds of pages (Prism's task uses
//! the same counts). Each result is one [`abi::bench::Line`]. The measured
//! system calls are made with the `syscall` instruction inline ([`sys`]),
//! as Prism's are, so no C library wrapper is counted on either side.
//! Transparent huge pages are switched off for the process
//! (`PR_SET_THP_DISABLE`): Prism maps 4 KiB pages, so Linux maps 4 KiB
//! pages too. "Two processes" are a `fork`: two address spaces, like
//! Prism's client and server spaces. The ping-pong and yield benchmarks run
//! both sides on CPU 0 (the VM has one CPU anyway) under `SCHED_FIFO` at one
//! priority where allowed, the policy closest to Prism's fixed-priority
//! round robin (an info line says which policy ran).
//!
//! # What each benchmark measures, and its Prism pair
//!
//! | Linux | Prism | the same work |
//! | --- | --- | --- |
//! | `empty` | `empty` | the two TSC reads alone (both sides' fixed overhead) |
//! | `getppid` | `null_syscall` (`MYSELF`) | enter the kernel, read one fact about the caller, return |
//! | `pipe_48` | `ipc_call_registers` | 48 bytes (6 words) to another address space and 48 back, the sender blocked until the answer |
//! | `eventfd_pingpong`, `futex_pingpong` | `ipc_call_registers` | the same round trip with the cheapest Linux wake-ups (no payload) |
//! | `pipe_480` | `ipc_call_utcb_60_words` | 480 bytes (60 words) each way |
//! | `pipe_4k` | `ipc_call_string_4k` | 4 KiB copied to the other space, a minimal answer back (Prism: an empty reply; a pipe: 1 byte) |
//! | `fault_shmem` | `page_fault_user_pager` | a write to an unmapped page whose frame exists: the fault, finding the frame, the mapping, the resumed write (Linux: a page of a populated memfd, i.e. a minor fault; Prism: the pager's frame, taken from sigma0 before the timing) |
//! | `fault_anon` | `page_fault_user_pager` | the pair: a minor fault on anonymous memory, which also allocates and zeroes a page (Prism's pager does neither) |
//! | `mmap_touch_shmem` | `ipc_call_map_one_page` | one existing page made present in an address space where it was not (Prism: a map item to another space, installed at once; Linux: `mmap` of one memfd page and the first write); the page is unmapped again after the timing on both sides |
//! | `mmap_touch_anon` | `ipc_call_map_one_page` | as above with a fresh anonymous page (zero-filled) |
//! | `munmap_2m` | `unmap_2m_512_derived` | 512 present 4 KiB mappings of a naturally aligned 2 MiB region removed (Linux: `munmap` of a populated memfd mapping; the pages stay in the page cache as Prism's frames stay with their owner) |
//! | `sched_yield_processes` | `yield_two_spaces` | one yield that runs the other side, which yields back: two switches and two system calls |
//! | `sched_yield_threads` | `yield_one_space` | the same between two threads of one address space |
//! | `mmap_populate_4m` | `rt_pager_frames_4m` | 4 MiB of fresh frames made present (Linux: anonymous `MAP_POPULATE`, zero-filled) |

use abi::bench::{tsc_end, tsc_start, Line, Summary};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

/// Untimed iterations before the timed ones.
const WARMUP: usize = 100;
const PAGE: usize = 4096;
const MIB2: usize = 2 << 20;

/// A raw system call, made inline as Prism's task makes its own.
///
/// # Safety
/// The arguments must be valid for system call `nr`.
#[inline(always)]
unsafe fn sys(nr: i64, a: u64, b: u64, c: u64, d: u64, e: u64, f: u64) -> i64 {
    let ret: i64;
    // SAFETY: the caller passes arguments valid for `nr`; `syscall` takes
    // rcx and r11 and returns in rax.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") nr => ret, in("rdi") a, in("rsi") b, in("rdx") c,
            in("r10") d, in("r8") e, in("r9") f, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

type Res<T> = Result<T, String>;

/// The result of a system call made with [`sys`] (negative: `-errno`).
fn ok(r: i64, what: &str) -> Res<u64> {
    if r < 0 {
        Err(format!("{what}: {}", std::io::Error::from_raw_os_error(-r as i32)))
    } else {
        Ok(r as u64)
    }
}

/// A libc call's result (`-1` and `errno` on failure).
fn check(r: i64, what: &str) -> Res<i64> {
    if r == -1 {
        Err(format!("{what}: {}", std::io::Error::last_os_error()))
    } else {
        Ok(r)
    }
}

fn write_all(fd: i32, buf: &[u8]) -> Res<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the buffer is valid for `len - done` bytes from `done`.
        let r =
            unsafe { sys(libc::SYS_write, fd as u64, buf[done..].as_ptr() as u64, (buf.len() - done) as u64, 0, 0, 0) };
        done += ok(r, "write")? as usize;
    }
    Ok(())
}

fn read_full(fd: i32, buf: &mut [u8]) -> Res<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the buffer is valid for writes of `len - done` bytes from `done`.
        let r = unsafe {
            sys(libc::SYS_read, fd as u64, buf[done..].as_mut_ptr() as u64, (buf.len() - done) as u64, 0, 0, 0)
        };
        match ok(r, "read")? {
            0 => return Err("read: end of file".into()),
            n => done += n as usize,
        }
    }
    Ok(())
}

fn mmap(addr: usize, len: usize, prot: i32, flags: i32, fd: i32) -> Res<usize> {
    // SAFETY: mmap checks its arguments; a MAP_FIXED caller owns the range.
    let r = unsafe { sys(libc::SYS_mmap, addr as u64, len as u64, prot as u64, flags as u64, fd as i64 as u64, 0) };
    ok(r, "mmap").map(|a| a as usize)
}

fn munmap(addr: usize, len: usize) -> Res<()> {
    // SAFETY: the caller mapped the range and no longer uses it.
    ok(unsafe { sys(libc::SYS_munmap, addr as u64, len as u64, 0, 0, 0, 0) }, "munmap").map(|_| ())
}

fn futex(word: &AtomicU32, op: i32, val: u32) -> i64 {
    // SAFETY: `word` is a live, aligned 32-bit word (shared between the
    // processes for the process-shared operations used here).
    unsafe { sys(libc::SYS_futex, word.as_ptr() as u64, op as u64, val as u64, 0, 0, 0) }
}

fn sched_yield() {
    // SAFETY: no arguments.
    unsafe { sys(libc::SYS_sched_yield, 0, 0, 0, 0, 0, 0) };
}

/// Runs `one` (which returns the measured interval of one iteration)
/// [`WARMUP`] times untimed and `rounds` times timed, and prints the line.
fn measure(name: &str, rounds: usize, mut one: impl FnMut() -> Res<u64>) -> Res<()> {
    for _ in 0..WARMUP {
        one()?;
    }
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        samples.push(one()?);
    }
    let s = Summary::of(&mut samples).ok_or("no rounds")?;
    println!("{}", Line(name, s));
    Ok(())
}

/// Forks a child that runs `body` and exits; returns its pid.
fn fork_child(body: impl FnOnce() -> Res<()>) -> Res<i32> {
    // SAFETY: the program is single-threaded here; the child only makes
    // system calls and exits without running the parent's destructors.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            let code = match body() {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("linux-bench: child: {e}");
                    1
                }
            };
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(pid),
    }
}

fn reap(pid: i32) -> Res<()> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    check(unsafe { libc::waitpid(pid, &mut status, 0) } as i64, "waitpid")?;
    if status != 0 {
        return Err(format!("child exited with status {status:#x}"));
    }
    Ok(())
}

fn pipe() -> Res<(i32, i32)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors.
    check(unsafe { libc::pipe(fds.as_mut_ptr()) } as i64, "pipe")?;
    Ok((fds[0], fds[1]))
}

fn close(fd: i32) {
    // SAFETY: the caller owns `fd` and does not use it afterwards.
    unsafe { libc::close(fd) };
}

/// A page shared by the parent and its children (`MAP_SHARED`, so the
/// futex words in it are process-shared).
fn shared_page() -> Res<&'static [AtomicU64; 512]> {
    let p = mmap(0, PAGE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1)?;
    // SAFETY: a fresh zeroed page, mapped for the rest of the program;
    // atomics of zero are valid.
    Ok(unsafe { &*(p as *const [AtomicU64; 512]) })
}

/// The low half of a shared word, as a futex word.
fn futex_word(w: &AtomicU64) -> &AtomicU32 {
    // SAFETY: an AtomicU64 is 8-byte aligned; its first 4 bytes form a valid,
    // aligned AtomicU32 (x86 is little-endian and allows mixed-size atomics).
    unsafe { &*(w.as_ptr() as *const AtomicU32) }
}

/// A memfd of `len` bytes whose pages are all in the page cache.
fn populated_memfd(len: usize) -> Res<i32> {
    // SAFETY: a NUL-terminated name.
    let fd = check(unsafe { libc::memfd_create(c"bench".as_ptr(), 0) } as i64, "memfd_create")? as i32;
    // SAFETY: `fd` is ours.
    check(unsafe { libc::ftruncate(fd, len as i64) } as i64, "ftruncate")?;
    let page = [1u8; PAGE];
    for off in (0..len).step_by(PAGE) {
        // SAFETY: `page` is valid for PAGE bytes.
        let r = unsafe { libc::pwrite(fd, page.as_ptr().cast(), PAGE, off as i64) };
        check(r as i64, "pwrite")?;
    }
    Ok(fd)
}

/// A benchmark: its name (for failures) and how to run it.
type Bench = (&'static str, fn(&Config) -> Res<()>);

struct Config {
    rounds: usize,
    big_rounds: usize,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|&v| v > 0).unwrap_or(default)
}

fn empty(c: &Config) -> Res<()> {
    measure("empty", c.rounds, || {
        let t0 = tsc_start();
        Ok(tsc_end() - t0)
    })
}

fn getppid(c: &Config) -> Res<()> {
    measure("getppid", c.rounds, || {
        let t0 = tsc_start();
        // SAFETY: getppid takes no arguments.
        let r = unsafe { sys(libc::SYS_getppid, 0, 0, 0, 0, 0, 0) };
        let t = tsc_end() - t0;
        ok(r, "getppid").map(|_| t)
    })
}

/// `out` bytes to a child process through one pipe, `back` bytes back
/// through another.
fn pipe_roundtrip(name: &str, c: &Config, out: usize, back: usize) -> Res<()> {
    let (to_r, to_w) = pipe()?;
    let (from_r, from_w) = pipe()?;
    let total = WARMUP + c.rounds;
    let child = fork_child(|| {
        let mut buf = vec![0u8; out.max(back)];
        for _ in 0..total {
            read_full(to_r, &mut buf[..out])?;
            write_all(from_w, &buf[..back])?;
        }
        Ok(())
    })?;
    let msg = vec![7u8; out];
    let mut answer = vec![0u8; back];
    let r = measure(name, c.rounds, || {
        let t0 = tsc_start();
        write_all(to_w, &msg)?;
        read_full(from_r, &mut answer)?;
        Ok(tsc_end() - t0)
    });
    for fd in [to_r, to_w, from_r, from_w] {
        close(fd);
    }
    r.and(reap(child))
}

fn eventfd_pingpong(c: &Config) -> Res<()> {
    // SAFETY: plain eventfd creation.
    let efd = || check(unsafe { libc::eventfd(0, 0) } as i64, "eventfd").map(|f| f as i32);
    let (ping, pong) = (efd()?, efd()?);
    let total = WARMUP + c.rounds;
    let child = fork_child(|| {
        let mut v = [0u8; 8];
        for _ in 0..total {
            read_full(ping, &mut v)?;
            write_all(pong, &1u64.to_ne_bytes())?;
        }
        Ok(())
    })?;
    let one = 1u64.to_ne_bytes();
    let mut v = [0u8; 8];
    let r = measure("eventfd_pingpong", c.rounds, || {
        let t0 = tsc_start();
        write_all(ping, &one)?;
        read_full(pong, &mut v)?;
        Ok(tsc_end() - t0)
    });
    close(ping);
    close(pong);
    r.and(reap(child))
}

/// A word in shared memory says whose turn it is (1: the child's); each
/// side wakes the other with `FUTEX_WAKE` and sleeps in `FUTEX_WAIT`.
fn futex_pingpong(c: &Config) -> Res<()> {
    let shared = shared_page()?;
    let turn = futex_word(&shared[0]);
    turn.store(0, SeqCst);
    let total = WARMUP + c.rounds;
    let child = fork_child(|| {
        for _ in 0..total {
            while turn.load(SeqCst) == 0 {
                futex(turn, libc::FUTEX_WAIT, 0);
            }
            turn.store(0, SeqCst);
            futex(turn, libc::FUTEX_WAKE, 1);
        }
        Ok(())
    })?;
    let r = measure("futex_pingpong", c.rounds, || {
        let t0 = tsc_start();
        turn.store(1, SeqCst);
        futex(turn, libc::FUTEX_WAKE, 1);
        while turn.load(SeqCst) == 1 {
            futex(turn, libc::FUTEX_WAIT, 1);
        }
        Ok(tsc_end() - t0)
    });
    r.and(reap(child))
}

/// Writes to `pages` pages of a fresh mapping from `map`, timing each
/// first write (a page fault the kernel resolves), then unmaps it.
fn faults(name: &str, c: &Config, map: impl Fn(usize) -> Res<usize>) -> Res<()> {
    let pages = WARMUP + c.rounds;
    let base = map(pages * PAGE)?;
    let mut next = 0;
    let r = measure(name, c.rounds, || {
        let p = (base + next * PAGE) as *mut u64;
        next += 1;
        let t0 = tsc_start();
        // SAFETY: a page of the mapping made above, written once.
        unsafe { p.write_volatile(next as u64) };
        Ok(tsc_end() - t0)
    });
    munmap(base, pages * PAGE)?;
    r
}

fn fault_shmem(c: &Config) -> Res<()> {
    let len = (WARMUP + c.rounds) * PAGE;
    let fd = populated_memfd(len)?;
    let r = faults("fault_shmem", c, |len| mmap(0, len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd));
    close(fd);
    r
}

fn fault_anon(c: &Config) -> Res<()> {
    faults("fault_anon", c, |len| {
        mmap(0, len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)
    })
}

/// `mmap` of one page and its first write, timed; `munmap` after, untimed.
fn mmap_touch(name: &str, c: &Config, flags: i32, fd: i32) -> Res<()> {
    measure(name, c.rounds, || {
        let t0 = tsc_start();
        let p = mmap(0, PAGE, libc::PROT_READ | libc::PROT_WRITE, flags, fd)?;
        // SAFETY: the page just mapped.
        unsafe { (p as *mut u64).write_volatile(1) };
        let t = tsc_end() - t0;
        munmap(p, PAGE)?;
        Ok(t)
    })
}

fn mmap_touch_shmem(c: &Config) -> Res<()> {
    let fd = populated_memfd(PAGE)?;
    let r = mmap_touch("mmap_touch_shmem", c, libc::MAP_SHARED, fd);
    close(fd);
    r
}

fn mmap_touch_anon(c: &Config) -> Res<()> {
    mmap_touch("mmap_touch_anon", c, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)
}

/// A naturally aligned 2 MiB memfd mapping populated (`MAP_POPULATE`,
/// untimed), then `munmap`, timed.
fn munmap_2m(c: &Config) -> Res<()> {
    let fd = populated_memfd(MIB2)?;
    let reserve = mmap(0, 2 * MIB2, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)?;
    let at = (reserve + MIB2 - 1) & !(MIB2 - 1);
    let flags = libc::MAP_SHARED | libc::MAP_FIXED | libc::MAP_POPULATE;
    let r = measure("munmap_2m", c.big_rounds, || {
        mmap(at, MIB2, libc::PROT_READ | libc::PROT_WRITE, flags, fd)?;
        let t0 = tsc_start();
        munmap(at, MIB2)?;
        let t = tsc_end() - t0;
        // Fill the hole at once, so that no other mapping (the allocator's)
        // lands in it before the next round maps over it.
        mmap(at, MIB2, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED, -1)?;
        Ok(t)
    });
    munmap(reserve, 2 * MIB2)?;
    close(fd);
    r
}

fn mmap_populate_4m(c: &Config) -> Res<()> {
    let len = 2 * MIB2;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE;
    measure("mmap_populate_4m", c.big_rounds, || {
        let t0 = tsc_start();
        let p = mmap(0, len, libc::PROT_READ | libc::PROT_WRITE, flags, -1)?;
        let t = tsc_end() - t0;
        munmap(p, len)?;
        Ok(t)
    })
}

/// Yields from this side while `other` (a process or a thread) yields
/// back in a loop, counting in `count`; checks that every yield ran it.
fn yield_pingpong(name: &str, c: &Config, count: &AtomicU64, stop: &AtomicU64) -> Res<()> {
    let mut missed = 0u64;
    let r = measure(name, c.rounds, || {
        let before = count.load(SeqCst);
        let t0 = tsc_start();
        sched_yield();
        let t = tsc_end() - t0;
        if count.load(SeqCst) == before {
            missed += 1;
        }
        Ok(t)
    });
    stop.store(1, SeqCst);
    if missed > 0 {
        println!("linux-bench: {name}: {missed} yields did not run the other side");
    }
    r
}

fn yielder(count: &AtomicU64, stop: &AtomicU64) {
    while stop.load(SeqCst) == 0 {
        count.fetch_add(1, SeqCst);
        sched_yield();
    }
}

fn sched_yield_processes(c: &Config) -> Res<()> {
    let shared = shared_page()?;
    let (count, stop) = (&shared[0], &shared[1]);
    let child = fork_child(|| {
        yielder(count, stop);
        Ok(())
    })?;
    let r = yield_pingpong("sched_yield_processes", c, count, stop);
    r.and(reap(child))
}

fn sched_yield_threads(c: &Config) -> Res<()> {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    static STOP: AtomicU64 = AtomicU64::new(0);
    let t = std::thread::spawn(|| yielder(&COUNT, &STOP));
    let r = yield_pingpong("sched_yield_threads", c, &COUNT, &STOP);
    t.join().map_err(|_| "the yielding thread panicked")?;
    r
}

/// Pins the process to CPU 0 and asks for `SCHED_FIFO` (inherited by the
/// children and threads); returns the policy in force.
fn pin_and_schedule() -> String {
    // SAFETY: zeroed cpu_set_t and sched_param are valid; CPU_SET and the calls only
    // touch the set and this process's scheduling parameters.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        let mut p: libc::sched_param = std::mem::zeroed();
        p.sched_priority = 10;
        // The system call itself: musl's wrapper always fails (ENOSYS).
        let r = sys(libc::SYS_sched_setscheduler, 0, libc::SCHED_FIFO as u64, (&raw const p) as u64, 0, 0, 0);
        match ok(r, "sched_setscheduler") {
            Ok(_) => "SCHED_FIFO priority 10".into(),
            Err(e) => format!("SCHED_OTHER ({e})"),
        }
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_else(|_| "unknown".into())
}

fn mount_pseudo_filesystems() {
    for (src, dir, kind) in [(c"proc", c"/proc", c"proc"), (c"sysfs", c"/sys", c"sysfs")] {
        // SAFETY: NUL-terminated strings; the initramfs has both folders.
        unsafe { libc::mount(src.as_ptr(), dir.as_ptr(), kind.as_ptr(), 0, std::ptr::null()) };
    }
}

fn main() {
    let init = std::process::id() == 1;
    if init {
        mount_pseudo_filesystems();
    }
    let c = Config { rounds: env_usize("BENCH_ROUNDS", 10_000), big_rounds: env_usize("BENCH_BIG_ROUNDS", 200) };
    println!("linux-bench: kernel {}", read_trimmed("/proc/version"));
    for v in ["meltdown", "spectre_v2"] {
        println!("linux-bench: {v}: {}", read_trimmed(&format!("/sys/devices/system/cpu/vulnerabilities/{v}")));
    }
    // SAFETY: PR_SET_THP_DISABLE takes a flag and three zeros.
    let thp = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } == 0;
    let policy = pin_and_schedule();
    println!(
        "linux-bench: rounds={} big_rounds={} warmup={WARMUP} policy={policy:?} thp_disabled={thp}",
        c.rounds, c.big_rounds
    );
    let benches: &[Bench] = &[
        ("empty", empty),
        ("getppid", getppid),
        ("pipe_48", |c| pipe_roundtrip("pipe_48", c, 48, 48)),
        ("eventfd_pingpong", eventfd_pingpong),
        ("futex_pingpong", futex_pingpong),
        ("pipe_480", |c| pipe_roundtrip("pipe_480", c, 480, 480)),
        ("pipe_4k", |c| pipe_roundtrip("pipe_4k", c, 4096, 1)),
        ("fault_shmem", fault_shmem),
        ("fault_anon", fault_anon),
        ("mmap_touch_shmem", mmap_touch_shmem),
        ("mmap_touch_anon", mmap_touch_anon),
        ("munmap_2m", munmap_2m),
        ("sched_yield_processes", sched_yield_processes),
        ("sched_yield_threads", sched_yield_threads),
        ("mmap_populate_4m", mmap_populate_4m),
    ];
    let mut failed = 0;
    for (name, run) in benches {
        if let Err(e) = run(&c) {
            println!("linux-bench: {name} failed: {e}");
            failed += 1;
        }
    }
    println!("bench done{}", if failed > 0 { format!(" ({failed} failed)") } else { String::new() });
    if init {
        // SAFETY: syncing and powering off are what process 1 does last.
        unsafe {
            libc::sync();
            libc::reboot(libc::RB_POWER_OFF);
        }
    }
    std::process::exit(if failed > 0 { 1 } else { 0 });
}
