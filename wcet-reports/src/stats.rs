//! Descriptive statistics of one sample of job times.
//!
//! Quantiles use the nearest-rank definition: the `q` quantile of `n`
//! sorted values is the value at rank `ceil(q * n)` (1-based), so every
//! reported quantile is an observed job time; the median is the 0.5
//! quantile in the same sense. With fewer than 1000 jobs p99.9 is the
//! maximum. The standard deviation is the sample one (divisor `n - 1`).

use serde::Serialize;

/// The statistics the report prints per scenario and task.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    pub jobs: usize,
    pub min: u64,
    pub mean: f64,
    pub median: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    /// The observed WCET.
    pub max: u64,
    pub std_dev: f64,
}

/// The value at nearest rank `ceil(q * n)` of `sorted` (non-empty, `0 < q <= 1`).
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    let n = sorted.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted[rank - 1]
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let ss: f64 = v.iter().map(|x| (x - mean) * (x - mean)).sum();
    (mean, (ss / (n - 1.0)).sqrt())
}

impl Stats {
    /// Statistics of `values`; `None` for an empty sample.
    pub fn of(values: &[u64]) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        let mut s = values.to_vec();
        s.sort_unstable();
        let f: Vec<f64> = values.iter().map(|&v| v as f64).collect();
        let (mean, std_dev) = mean_sd(&f);
        Some(Stats {
            jobs: s.len(),
            min: s[0],
            mean,
            median: quantile(&s, 0.5),
            p90: quantile(&s, 0.9),
            p99: quantile(&s, 0.99),
            p999: quantile(&s, 0.999),
            max: s[s.len() - 1],
            std_dev,
        })
    }
}

/// Mean and maximum of an optional column (PMC deltas, interference).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MeanMax {
    pub mean: f64,
    pub max: u64,
    /// Jobs that had a value.
    pub jobs: usize,
}

impl MeanMax {
    /// `None` where no job has a value ("not available", never zero).
    pub fn of(values: impl IntoIterator<Item = Option<u64>>) -> Option<MeanMax> {
        let v: Vec<u64> = values.into_iter().flatten().collect();
        let max = *v.iter().max()?;
        Some(MeanMax { mean: v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64, max, jobs: v.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_ten_values() {
        // Sorted: 1 2 3 4 5 6 7 8 9 100. Mean 14.5.
        // Sum of squares about the mean: 13.5²+12.5²+...+5.5² + 85.5²
        //   = 182.25+156.25+132.25+110.25+90.25+72.25+56.25+42.25+30.25+7310.25 = 8182.5
        // Sample variance 8182.5 / 9 = 909.1666..., sd = 30.1524...
        let s = Stats::of(&[5, 3, 100, 1, 2, 4, 6, 8, 7, 9]).unwrap();
        assert_eq!((s.jobs, s.min, s.max), (10, 1, 100));
        assert_eq!(s.mean, 14.5);
        // ranks: median ceil(5) = 5th -> 5; p90 ceil(9) = 9th -> 9; p99 ceil(9.9) = 10th -> 100.
        assert_eq!((s.median, s.p90, s.p99, s.p999), (5, 9, 100, 100));
        assert!((s.std_dev - 30.152_390_9).abs() < 1e-6, "{}", s.std_dev);
    }

    #[test]
    fn quantiles_of_1000_values_and_one_value() {
        let v: Vec<u64> = (1..=1000).collect();
        let s = Stats::of(&v).unwrap();
        assert_eq!((s.median, s.p90, s.p99, s.p999, s.max), (500, 900, 990, 999, 1000));
        assert_eq!(s.mean, 500.5);
        let one = Stats::of(&[7]).unwrap();
        assert_eq!((one.min, one.median, one.p999, one.max, one.std_dev), (7, 7, 7, 7, 0.0));
        assert_eq!(Stats::of(&[]), None);
    }

    #[test]
    fn mean_max_says_not_available_rather_than_zero() {
        assert_eq!(MeanMax::of([None, None]), None);
        assert_eq!(MeanMax::of([Some(2), None, Some(4)]), Some(MeanMax { mean: 3.0, max: 4, jobs: 2 }));
    }
}
