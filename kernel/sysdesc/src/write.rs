//! The writer: a [`System`] in its canonical compact form.

use crate::{System, HEADER};
use core::fmt;

/// Writes `sys` in the canonical compact form: the header, `system`,
/// `kernel`, `llc` (if any), the partitions and the tasks in order, every
/// key in a fixed order. The text of a system [`crate::parse`] accepted is
/// always accepted again and parses to an equal system; a hand-assembled
/// system must hold words (no spaces, `#` or `=` in names, no line break in
/// arguments) for that to hold, which the host checks before it writes.
pub fn write(sys: &System<'_>, out: &mut impl fmt::Write) -> fmt::Result {
    writeln!(out, "{HEADER}")?;
    writeln!(
        out,
        "system name={} scenario={} shared_colors={}",
        sys.name(),
        sys.scenario(),
        flag(sys.shared_colors())
    )?;
    let k = sys.kernel();
    writeln!(out, "kernel kmem={} timeslice={}", k.kmem, k.timeslice)?;
    if let Some(l) = sys.llc() {
        writeln!(out, "llc level={} size={} ways={} line={}", l.level, l.size, l.ways, l.line_size)?;
    }
    for p in sys.partitions() {
        writeln!(out, "partition name={} colors={} memory={}", p.name, p.colors, p.memory)?;
    }
    for t in sys.tasks() {
        write!(out, "task name={} bin={} role={}", t.name, t.bin, t.role)?;
        if let Some(p) = t.partition {
            write!(out, " partition={}", sys.partitions().get(p).map_or("", |p| p.name))?;
        }
        write!(
            out,
            " pager={} prio={} mcp={} control={} handler={} timeslice={} budget={} period={} heap={} stack={}",
            sys.ref_name(t.pager),
            t.prio,
            t.mcp,
            flag(t.control),
            sys.ref_name(t.handler),
            t.timeslice,
            t.budget,
            t.period,
            t.heap,
            t.stack
        )?;
        if let Some(rt) = t.rt {
            write!(out, " rt_period={} deadline={} jobs={}", rt.period, rt.deadline, rt.jobs)?;
        }
        if let Some(allow) = t.allow {
            out.write_str(" allow=")?;
            for (i, p) in allow.iter().enumerate() {
                if i > 0 {
                    out.write_char(',')?;
                }
                out.write_str(sys.peer_name(p))?;
            }
        }
        if t.irq {
            out.write_str(" irq=1")?;
        }
        for (i, (base, log2)) in t.ports.iter().enumerate() {
            write!(out, "{}{base:#x}:{}", if i == 0 { " ports=" } else { "," }, 1u32 << log2)?;
        }
        if !t.args.is_empty() {
            write!(out, " -- {}", t.args)?;
        }
        out.write_char('\n')?;
    }
    Ok(())
}

fn flag(b: bool) -> u8 {
    u8::from(b)
}
