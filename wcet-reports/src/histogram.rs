//! `histogram.txt` in the format of `cyclictest -h` (rt-tests), so scripts
//! that plot cyclictest histograms read it unchanged.
//!
//! cyclictest's unit is one microsecond per bucket; ours is a bucket of
//! `width` cycles of the report's metric, stated in a comment line before
//! `# Histogram`. Rows are `%06d` bucket index, a space, then one `%06d`
//! count per column separated by tabs, for every bucket including empty
//! ones. The footer is cyclictest's: `# Total:` (samples inside the
//! histogram, `%09d`), `# Min Latencies:`, `# Avg Latencies:`,
//! `# Max Latencies:` (in bucket units, `%05d`), `# Histogram Overflows:`
//! (samples at or beyond the last bucket) and `# Histogram Overflow at cycle
//! number:` with one `# Thread N:` line per column listing the job numbers
//! that overflowed. Percentiles are never computed from this histogram
//! (like rteval, an overflowed histogram has none); the report's quantiles
//! come from the raw job times.

use std::fmt::Write;

/// One column: a label and the samples in job order.
pub struct Column<'a> {
    pub label: String,
    pub values: &'a [u64],
}

/// A "nice" bucket width (1, 2 or 5 times a power of ten) such that
/// `max` falls inside `buckets` buckets.
pub fn auto_width(max: u64, buckets: usize) -> u64 {
    let need = max / buckets.max(1) as u64 + 1;
    let mut p = 1u64;
    loop {
        for m in [1, 2, 5] {
            if p.saturating_mul(m) >= need {
                return p.saturating_mul(m);
            }
        }
        p = p.saturating_mul(10);
    }
}

/// Number of buckets needed for `max` at `width` (at least 1).
pub fn buckets_for(max: u64, width: u64) -> usize {
    (max / width.max(1)) as usize + 1
}

/// Renders the histogram of `cols` with `buckets` buckets of `width`.
/// `comments` go first, each as a `# ` line.
pub fn render(cols: &[Column<'_>], width: u64, buckets: usize, comments: &[String]) -> String {
    let width = width.max(1);
    let mut out = String::new();
    for c in comments {
        let _ = writeln!(out, "# {c}");
    }
    let labels: Vec<&str> = cols.iter().map(|c| c.label.as_str()).collect();
    let _ = writeln!(out, "# Bucket width: {width} cycles; columns: {}", labels.join(" "));
    let mut counts = vec![vec![0u64; cols.len()]; buckets];
    let mut overflow_jobs: Vec<Vec<usize>> = vec![Vec::new(); cols.len()];
    for (j, c) in cols.iter().enumerate() {
        for (k, &v) in c.values.iter().enumerate() {
            let b = (v / width) as usize;
            if b < buckets {
                counts[b][j] += 1;
            } else {
                overflow_jobs[j].push(k);
            }
        }
    }
    out.push_str("# Histogram\n");
    for (i, row) in counts.iter().enumerate() {
        let _ = write!(out, "{i:06} ");
        let cells: Vec<String> = row.iter().map(|n| format!("{n:06}")).collect();
        out.push_str(&cells.join("\t"));
        out.push('\n');
    }
    let line = |out: &mut String, name: &str, f: &dyn Fn(usize, &Column<'_>) -> String| {
        out.push_str(name);
        for (j, c) in cols.iter().enumerate() {
            out.push(' ');
            out.push_str(&f(j, c));
        }
        out.push('\n');
    };
    line(&mut out, "# Total:", &|j, c| format!("{:09}", c.values.len() - overflow_jobs[j].len()));
    let unit = |v: u64| v / width;
    line(&mut out, "# Min Latencies:", &|_, c| format!("{:05}", c.values.iter().min().map_or(0, |&v| unit(v))));
    line(&mut out, "# Avg Latencies:", &|_, c| {
        let n = c.values.len().max(1) as f64;
        let avg = c.values.iter().map(|&v| v as f64).sum::<f64>() / n / width as f64;
        format!("{:05}", avg.round() as u64)
    });
    line(&mut out, "# Max Latencies:", &|_, c| format!("{:05}", c.values.iter().max().map_or(0, |&v| unit(v))));
    line(&mut out, "# Histogram Overflows:", &|j, _| format!("{:05}", overflow_jobs[j].len()));
    out.push_str("# Histogram Overflow at cycle number:\n");
    for (j, jobs) in overflow_jobs.iter().enumerate() {
        let _ = write!(out, "# Thread {j}:");
        for k in jobs {
            let _ = write!(out, " {k:05}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cyclictest_layout_with_empty_buckets_and_overflows() {
        let a = [5, 12, 14, 31];
        let b = [1, 2, 47];
        let cols = [Column { label: "alone/m".into(), values: &a }, Column { label: "shared/m".into(), values: &b }];
        let t = render(&cols, 10, 4, &["Prism WCET".into()]);
        let want = "# Prism WCET\n\
# Bucket width: 10 cycles; columns: alone/m shared/m\n\
# Histogram\n\
000000 000001\t000002\n\
000001 000002\t000000\n\
000002 000000\t000000\n\
000003 000001\t000000\n\
# Total: 000000004 000000002\n\
# Min Latencies: 00000 00000\n\
# Avg Latencies: 00002 00002\n\
# Max Latencies: 00003 00004\n\
# Histogram Overflows: 00000 00001\n\
# Histogram Overflow at cycle number:\n\
# Thread 0:\n\
# Thread 1: 00002\n";
        assert_eq!(t, want);
    }

    #[test]
    fn widths_are_nice_and_fit_the_maximum() {
        assert_eq!(auto_width(999, 1000), 1);
        assert_eq!(auto_width(1000, 1000), 2);
        assert_eq!(auto_width(4_999_999, 1000), 5000);
        assert_eq!(auto_width(5_000_000, 1000), 10_000);
        for max in [0, 7, 12345, 98_765_432] {
            let w = auto_width(max, 500);
            assert!(buckets_for(max, w) <= 500);
        }
    }
}
