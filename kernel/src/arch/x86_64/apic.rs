//! Local APIC timer (x2APIC through the `x2apic` crate where the CPU has
//! it, xAPIC MMIO otherwise; TSC-deadline mode where offered, one-shot
//! otherwise), TSC frequency detection, and the legacy 8259 PIC for
//! device interrupt lines.

use super::paging;
use raw_cpuid::CpuId;
use x2apic::lapic::{LocalApicBuilder, TimerDivide, TimerMode};
use x86_64::instructions::port::Port;

/// Interrupt vectors: legacy IRQ `n` arrives at `IRQ_BASE + n`.
pub const IRQ_BASE: u8 = 32;
pub const TIMER_VECTOR: u8 = 48;
pub const ERROR_VECTOR: u8 = 49;
pub const SPURIOUS_VECTOR: u8 = 63;

/// What [`init`] found and calibrated. Written once at boot and only read
/// afterwards, so a shared reference does: the registers are written
/// through MSRs or the MMIO page ([`write_reg`]), never through a `&mut`
/// to this (nor to the `x2apic` crate's `LocalApic`, which `init` uses
/// only to enable the APIC).
struct Apic {
    /// x2APIC mode (MSRs) rather than xAPIC (the register page).
    x2apic: bool,
    /// The xAPIC register page (unused in x2APIC mode).
    xapic: u64,
    deadline_mode: bool,
    /// APIC timer ticks per 2^32 TSC ticks (one-shot mode).
    apic_per_tsc: u64,
}

static APIC: spin::Once<Apic> = spin::Once::new();

/// Register offsets (xAPIC page; x2APIC MSR `0x800 + offset / 16`; the
/// test kernel's `nmi_after` has two more).
const EOI: u32 = 0xb0;
const LINT0: u32 = 0x350;
const INITIAL_COUNT: u32 = 0x380;

/// Writes local APIC register `reg` (one of the offsets above).
fn write_reg(a: &Apic, reg: u32, v: u32) {
    if a.x2apic {
        // SAFETY: x2APIC register MSR 0x800 + offset/16 of our own APIC.
        unsafe { x86_64::registers::model_specific::Msr::new(0x800 + reg / 16).write(v as u64) };
    } else {
        // SAFETY: a naturally aligned 32-bit register of the xAPIC page
        // mapped at init.
        unsafe { core::ptr::write_volatile((a.xapic + reg as u64) as *mut u32, v) };
    }
}

fn pit_wait_ms(ms: u32) {
    // PIT channel 2, gated by port 0x61 bit 0, counting down from
    // 1193182 Hz; bit 5 of port 0x61 goes high at terminal count.
    let count = (1_193_182u32 * ms / 1000).min(0xffff) as u16;
    // SAFETY: standard PC ports; channel 2 drives only the speaker gate,
    // which we keep disabled (bit 1 clear).
    unsafe {
        let mut p61 = Port::<u8>::new(0x61);
        let v = p61.read();
        p61.write((v & !0x02) | 0x01);
        Port::<u8>::new(0x43).write(0b1011_0000);
        Port::<u8>::new(0x42).write(count as u8);
        Port::<u8>::new(0x42).write((count >> 8) as u8);
        let mut spins = 0u64;
        while p61.read() & 0x20 == 0 && spins < 100_000_000 {
            spins += 1;
        }
        p61.write(v);
    }
}

/// TSC ticks per second: CPUID 0x15 (crystal ratio), the hypervisor leaf
/// 0x40000010, CPUID 0x16 (base MHz), else measured against the PIT.
pub fn tsc_frequency() -> u64 {
    let c = CpuId::new();
    if let Some(t) = c.get_tsc_info() {
        if let Some(hz) = t.tsc_frequency() {
            if hz > 0 {
                return hz;
            }
        }
    }
    if let Some(hv) = c.get_hypervisor_info() {
        if let Some(khz) = hv.tsc_frequency() {
            if khz > 0 {
                return khz as u64 * 1000;
            }
        }
    }
    if let Some(f) = c.get_processor_frequency_info() {
        if f.processor_base_frequency() > 0 {
            return f.processor_base_frequency() as u64 * 1_000_000;
        }
    }
    let t0 = super::cpu::tsc();
    pit_wait_ms(20);
    (super::cpu::tsc() - t0) * 50
}

/// Starts the local APIC with its timer masked until first armed.
pub fn init(tsc_hz: u64, pool: &mut crate::pool::FramePool) {
    // The xAPIC register page (x2APIC uses MSRs instead).
    // SAFETY: reading the APIC base MSR has no side effects.
    let base = unsafe { x2apic::lapic::xapic_base() };
    let virt = paging::map_mmio(crate::types::PhysAddr::from_kernel(base), pool).expect("APIC page mapped").as_u64();
    let has_deadline = CpuId::new().get_feature_info().is_some_and(|f| f.has_tsc_deadline());
    let mut lapic = LocalApicBuilder::new()
        .timer_vector(TIMER_VECTOR as usize)
        .error_vector(ERROR_VECTOR as usize)
        .spurious_vector(SPURIOUS_VECTOR as usize)
        .timer_mode(if has_deadline { TimerMode::TscDeadline } else { TimerMode::OneShot })
        .timer_divide(TimerDivide::Div16)
        .timer_initial(0)
        .set_xapic_base(virt)
        .build()
        .expect("local APIC");
    // SAFETY: the APIC is ours; enabling it with the timer idle.
    unsafe { lapic.enable() };
    let mut a = Apic {
        x2apic: CpuId::new().get_feature_info().is_some_and(|f| f.has_x2apic()),
        xapic: virt,
        deadline_mode: has_deadline,
        apic_per_tsc: 0,
    };
    // The 8259 pair reaches the CPU through LINT0 as ExtINT. `enable`
    // writes 0 there (unmasked, fixed delivery of vector 0), which leaves a
    // legacy interrupt pending until some other APIC interrupt happens to
    // make the CPU look (so a line fired at most once per timer event).
    const LINT0_EXTINT: u32 = 0x700;
    write_reg(&a, LINT0, LINT0_EXTINT);
    if !has_deadline {
        // Calibrate the APIC timer against the TSC over ~10 ms.
        // SAFETY: one-shot count on our own timer.
        unsafe {
            lapic.set_timer_initial(u32::MAX);
            let t0 = super::cpu::tsc();
            while super::cpu::tsc() - t0 < tsc_hz / 100 {
                core::hint::spin_loop();
            }
            let done = u32::MAX - lapic.timer_current();
            let dt = super::cpu::tsc() - t0;
            lapic.set_timer_initial(0);
            a.apic_per_tsc = ((done as u128) << 32).checked_div(dt as u128).unwrap_or(0) as u64;
        }
    }
    APIC.call_once(|| a);
    remap_pic();
}

/// Which timer the CPU offers, for the banner.
pub fn mode() -> &'static str {
    match APIC.get().map(|a| (a.deadline_mode, a.x2apic)) {
        Some((true, true)) => "x2APIC, TSC-deadline",
        Some((true, false)) => "xAPIC, TSC-deadline",
        Some((false, true)) => "x2APIC, one-shot",
        Some((false, false)) => "xAPIC, one-shot",
        None => "not started",
    }
}

/// Fires the timer interrupt at TSC time `deadline` (`u64::MAX`: never).
pub fn set_deadline(deadline: u64, now: u64) {
    let Some(a) = APIC.get() else { return };
    if a.deadline_mode {
        let d = if deadline == u64::MAX { 0 } else { deadline.max(now + 1) };
        // SAFETY: IA32_TSC_DEADLINE only arms our own timer.
        unsafe { x86_64::registers::model_specific::Msr::new(0x6e0).write(d) };
    } else {
        let count = if deadline == u64::MAX {
            0
        } else {
            let dt = deadline.saturating_sub(now).max(1) as u128;
            ((dt * a.apic_per_tsc as u128) >> 32).clamp(1, u32::MAX as u128) as u32
        };
        write_reg(a, INITIAL_COUNT, count);
    }
}

/// Test kernel: turns the APIC timer into a one-shot NMI source that
/// fires after `ticks` timer ticks (divide by 16), for the NMI test. The
/// timer stays an NMI source (the test ends the run).
#[cfg(feature = "ktest")]
pub fn nmi_after(ticks: u32) {
    const LVT_TIMER: u32 = 0x320;
    const DIVIDE: u32 = 0x3e0;
    // One-shot mode (bits 17-18 clear), unmasked, NMI delivery (0b100 in
    // bits 8-10); the vector field is ignored for NMIs.
    const LVT_ONESHOT_NMI: u32 = 0x400 | 2;
    const DIV16: u32 = 0b0011;
    let Some(a) = APIC.get() else { return };
    for (reg, v) in [(LVT_TIMER, LVT_ONESHOT_NMI), (DIVIDE, DIV16), (INITIAL_COUNT, ticks)] {
        write_reg(a, reg, v);
    }
}

/// Acknowledges the interrupt being handled.
pub fn eoi() {
    if let Some(a) = APIC.get() {
        write_reg(a, EOI, 0);
    }
}

/// Remaps the 8259 pair to `IRQ_BASE..IRQ_BASE+16`, all lines masked.
fn remap_pic() {
    // SAFETY: the standard ICW sequence; every line stays masked.
    unsafe {
        let (mut c1, mut d1, mut c2, mut d2) =
            (Port::<u8>::new(0x20), Port::<u8>::new(0x21), Port::<u8>::new(0xa0), Port::<u8>::new(0xa1));
        c1.write(0x11);
        c2.write(0x11);
        d1.write(IRQ_BASE);
        d2.write(IRQ_BASE + 8);
        d1.write(4);
        d2.write(2);
        d1.write(1);
        d2.write(1);
        d1.write(0xff);
        d2.write(0xfb); // cascade line 2 on the master stays usable
        d1.write(0xfb);
    }
}

/// Masks or unmasks legacy line `irq` (0..16).
pub fn pic_set_masked(irq: u8, masked: bool) {
    let port = if irq < 8 { 0x21 } else { 0xa1 };
    let bit = 1u8 << (irq % 8);
    // SAFETY: read-modify-write of a PIC mask register.
    unsafe {
        let mut p = Port::<u8>::new(port);
        let v = p.read();
        p.write(if masked { v | bit } else { v & !bit });
    }
}

/// End of interrupt for legacy line `irq`.
pub fn pic_eoi(irq: u8) {
    // SAFETY: non-specific EOI to the PIC(s) that raised the line.
    unsafe {
        if irq >= 8 {
            Port::<u8>::new(0xa0).write(0x20);
        }
        Port::<u8>::new(0x20).write(0x20);
    }
}
