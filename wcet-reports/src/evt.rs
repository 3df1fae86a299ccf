//! Probabilistic WCET by extreme value theory, with the tests that say
//! whether it may be applied.
//!
//! # Conventions
//!
//! * **GEV** `G(x) = exp(-(1 + ξ (x - μ) / σ)^(-1/ξ))`, with the shape sign of
//!   Coles (2001) and R's `evd`/`ismev`: `ξ > 0` is a heavy (Fréchet) tail,
//!   `ξ < 0` a bounded (Weibull) tail, `ξ = 0` the Gumbel
//!   `exp(-exp(-(x - μ) / σ))`. scipy's `genextreme` uses `c = -ξ`.
//! * **GPD** of the exceedances `y = x - u > 0` over a threshold `u`:
//!   `P(Y > y) = (1 + ξ y / σ)^(-1/ξ)`, same sign (scipy's `genpareto` uses
//!   `c = ξ`, the same sign as here).
//! * Exceedance probabilities are **per job**: pWCET(p) is the time that one
//!   job exceeds with probability `p`. A block-maxima fit over blocks of `B`
//!   jobs is turned into per-job terms by `P(max of B > x) = 1 - (1 - p)^B`.
//!
//! # Methods
//!
//! * Fits are maximum likelihood, minimised with `argmin`'s Nelder-Mead on
//!   standardised data (`(x - mean) / sd`), restarted once from its best
//!   point; GEV parameters `(μ, ln σ, ξ)`, GPD `(ln σ, ξ)`.
//! * Block maxima: blocks of `B = max(10, n / 100)` consecutive jobs (at
//!   least [`MIN_BLOCKS`] blocks). GPD: threshold at the
//!   `1 - GPD_TAIL` quantile (the top 10 % of jobs, at least
//!   [`MIN_EXCEEDANCES`] of them).
//! * **MBPTA-CV** (Abella et al., "Measurement-Based Worst-Case Execution
//!   Time Estimation Using the Coefficient of Variation", ACM TODAES 2017):
//!   for the `k` largest values over the threshold `u_k` (the next value),
//!   the coefficient of variation of the exceedances is 1 for an
//!   exponential tail, with standard error about `1 / sqrt(k)`. A tail is
//!   accepted as exponential or lighter when `CV_k <= 1 + 1.96 / sqrt(k)`
//!   for every `k` of the grid from [`MIN_EXCEEDANCES`] up; the lowest
//!   such threshold is used and the exponential tail fitted there
//!   (`P(X > x) = k/n * exp(-(x - u) / β)`, `β` the mean exceedance) gives
//!   the headline pWCET. A heavier tail (CV above the band at the smallest
//!   `k`) is rejected: no number.
//! * **i.i.d. tests** at significance 0.05 each, as MBPTA uses them:
//!   Ljung-Box on the first `min(20, n / 4)` autocorrelations
//!   (independence), Wald-Wolfowitz runs above/below the median
//!   (independence), two-sample Kolmogorov-Smirnov between the first and
//!   second half of the trace (identical distribution). If any fails, or the
//!   sample has fewer than [`MIN_JOBS`] jobs, or every job took the same
//!   time, no pWCET is printed and the report says why.

use argmin::core::{CostFunction, Error as ArgminError, Executor, State};
use argmin::solver::neldermead::NelderMead;
use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

use crate::stats::mean_sd;

/// Exceedance probabilities (per job) at which pWCET is given.
pub const EXCEEDANCES: [f64; 4] = [1e-3, 1e-6, 1e-9, 1e-12];
/// Fewest jobs for any pWCET.
pub const MIN_JOBS: usize = 200;
/// Fewest block maxima for a GEV/Gumbel fit.
pub const MIN_BLOCKS: usize = 20;
/// Fewest exceedances for a GPD or exponential tail.
pub const MIN_EXCEEDANCES: usize = 20;
/// Fraction of jobs above the GPD threshold.
pub const GPD_TAIL: f64 = 0.1;
/// Significance level of each i.i.d. test.
pub const ALPHA: f64 = 0.05;

/// Result of one hypothesis test.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Test {
    pub statistic: f64,
    pub p_value: f64,
    pub pass: bool,
}

impl Test {
    fn new(statistic: f64, p_value: f64) -> Test {
        Test { statistic, p_value, pass: p_value >= ALPHA }
    }
}

/// The independence and identical-distribution tests.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Iid {
    pub ljung_box: Option<Test>,
    /// Lags used by Ljung-Box.
    pub lags: usize,
    pub runs: Option<Test>,
    pub ks_halves: Option<Test>,
    /// All three ran and passed.
    pub pass: bool,
}

/// Ljung-Box `Q = n (n + 2) Σ ρ_k² / (n - k)`, chi-squared with `h` degrees
/// of freedom. `None` for a constant sample or `h = 0`.
pub fn ljung_box(x: &[f64], h: usize) -> Option<Test> {
    let n = x.len();
    if h == 0 || n <= h + 1 {
        return None;
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let d: Vec<f64> = x.iter().map(|v| v - mean).collect();
    let c0: f64 = d.iter().map(|v| v * v).sum();
    if c0 == 0.0 {
        return None;
    }
    let nf = n as f64;
    let q: f64 = (1..=h)
        .map(|k| {
            let rho = d.iter().zip(&d[k..]).map(|(a, b)| a * b).sum::<f64>() / c0;
            rho * rho / (nf - k as f64)
        })
        .sum::<f64>()
        * nf
        * (nf + 2.0);
    let chi = ChiSquared::new(h as f64).ok()?;
    Some(Test::new(q, 1.0 - chi.cdf(q)))
}

/// Wald-Wolfowitz runs test above/below the median (values equal to the
/// median are left out), normal approximation, two-sided.
pub fn runs_test(x: &[f64]) -> Option<Test> {
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n < 2 {
        return None;
    }
    let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
    let signs: Vec<bool> = x.iter().filter(|&&v| v != median).map(|&v| v > median).collect();
    let n1 = signs.iter().filter(|&&b| b).count() as f64;
    let n2 = signs.len() as f64 - n1;
    if n1 == 0.0 || n2 == 0.0 {
        return None;
    }
    let runs = 1 + signs.windows(2).filter(|w| w[0] != w[1]).count();
    let nn = n1 + n2;
    let mu = 2.0 * n1 * n2 / nn + 1.0;
    let var = (mu - 1.0) * (mu - 2.0) / (nn - 1.0);
    if var <= 0.0 {
        return None;
    }
    let z = (runs as f64 - mu) / var.sqrt();
    let normal = Normal::new(0.0, 1.0).ok()?;
    Some(Test::new(z, 2.0 * (1.0 - normal.cdf(z.abs()))))
}

/// Kolmogorov's survival function `Q(λ) = 2 Σ (-1)^(j-1) exp(-2 j² λ²)`.
fn kolmogorov_q(lambda: f64) -> f64 {
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    for j in 1..=100 {
        let j = j as f64;
        let term = (-2.0 * j * j * lambda * lambda).exp();
        sum += if j as u64 % 2 == 1 { term } else { -term };
        if term < 1e-12 {
            break;
        }
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// Two-sample Kolmogorov-Smirnov: `D = sup |F_a - F_b|`, asymptotic p-value
/// with Stephens' small-sample correction (`λ = (√m + 0.12 + 0.11/√m) D`,
/// `m = n_a n_b / (n_a + n_b)`).
pub fn ks_two_sample(a: &[f64], b: &[f64]) -> Option<Test> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0usize, 0usize, 0.0f64);
    while i < a.len() && j < b.len() {
        let v = a[i].min(b[j]);
        while i < a.len() && a[i] <= v {
            i += 1;
        }
        while j < b.len() && b[j] <= v {
            j += 1;
        }
        d = d.max((i as f64 / na - j as f64 / nb).abs());
    }
    let m = (na * nb / (na + nb)).sqrt();
    Some(Test::new(d, kolmogorov_q((m + 0.12 + 0.11 / m) * d)))
}

/// The three i.i.d. tests on the trace `x` (in job order).
pub fn iid(x: &[f64]) -> Iid {
    let lags = 20.min(x.len() / 4);
    let ljung_box = ljung_box(x, lags);
    let runs = runs_test(x);
    let half = x.len() / 2;
    let ks_halves = ks_two_sample(&x[..half], &x[half..]);
    let pass = [&ljung_box, &runs, &ks_halves].iter().all(|t| t.as_ref().is_some_and(|t| t.pass));
    Iid { ljung_box, lags, runs, ks_halves, pass }
}

/// A fitted GEV (`xi = 0` for the Gumbel fit).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Gev {
    pub mu: f64,
    pub sigma: f64,
    pub xi: f64,
}

/// Below this |ξ| the Gumbel formulas are used.
const XI_ZERO: f64 = 1e-7;

impl Gev {
    /// `P(block maximum > x)`.
    pub fn exceedance(&self, x: f64) -> f64 {
        let z = (x - self.mu) / self.sigma;
        let t = if self.xi.abs() < XI_ZERO {
            (-z).exp()
        } else {
            let s = 1.0 + self.xi * z;
            if s <= 0.0 {
                return if self.xi > 0.0 { 1.0 } else { 0.0 };
            }
            s.powf(-1.0 / self.xi)
        };
        -(-t).exp_m1()
    }

    /// The value a block maximum exceeds with probability `q`.
    pub fn quantile_exceeded(&self, q: f64) -> f64 {
        // G(x) = 1 - q  =>  -ln G = -ln(1 - q)
        let l = -(-q).ln_1p();
        if self.xi.abs() < XI_ZERO {
            self.mu - self.sigma * l.ln()
        } else {
            self.mu + self.sigma / self.xi * (l.powf(-self.xi) - 1.0)
        }
    }

    /// Per-job pWCET at exceedance `p` for blocks of `block` jobs.
    pub fn pwcet(&self, p: f64, block: usize) -> f64 {
        // 1 - (1 - p)^B, without cancellation for tiny p.
        let q = -((block as f64) * (-p).ln_1p()).exp_m1();
        self.quantile_exceeded(q)
    }

    /// Negative log-likelihood of `x`.
    pub fn nll(&self, x: &[f64]) -> f64 {
        if self.sigma <= 0.0 || !self.sigma.is_finite() {
            return f64::INFINITY;
        }
        let n = x.len() as f64;
        let mut sum = n * self.sigma.ln();
        for &v in x {
            let z = (v - self.mu) / self.sigma;
            if self.xi.abs() < XI_ZERO {
                sum += z + (-z).exp();
            } else {
                let t = 1.0 + self.xi * z;
                if t <= 0.0 {
                    return f64::INFINITY;
                }
                let lt = t.ln();
                sum += (1.0 + 1.0 / self.xi) * lt + (-lt / self.xi).exp();
            }
        }
        if sum.is_finite() {
            sum
        } else {
            f64::INFINITY
        }
    }
}

/// A fitted GPD over threshold `u`; `rate` is the fraction of all jobs above `u`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Gpd {
    pub u: f64,
    pub sigma: f64,
    pub xi: f64,
    pub rate: f64,
}

impl Gpd {
    /// `P(X > x)` per job (for `x >= u`).
    pub fn exceedance(&self, x: f64) -> f64 {
        let y = (x - self.u).max(0.0) / self.sigma;
        let s = if self.xi.abs() < XI_ZERO {
            (-y).exp()
        } else {
            let t = 1.0 + self.xi * y;
            if t <= 0.0 {
                0.0
            } else {
                t.powf(-1.0 / self.xi)
            }
        };
        self.rate * s
    }

    /// Per-job pWCET at exceedance `p` (`p < rate`).
    pub fn pwcet(&self, p: f64) -> f64 {
        let r = p / self.rate;
        if self.xi.abs() < XI_ZERO {
            self.u - self.sigma * r.ln()
        } else {
            self.u + self.sigma / self.xi * (r.powf(-self.xi) - 1.0)
        }
    }

    /// Negative log-likelihood of exceedances `y` (all > 0).
    pub fn nll(&self, y: &[f64]) -> f64 {
        if self.sigma <= 0.0 || !self.sigma.is_finite() {
            return f64::INFINITY;
        }
        let mut sum = y.len() as f64 * self.sigma.ln();
        for &v in y {
            if self.xi.abs() < XI_ZERO {
                sum += v / self.sigma;
            } else {
                let t = 1.0 + self.xi * v / self.sigma;
                if t <= 0.0 {
                    return f64::INFINITY;
                }
                sum += (1.0 + 1.0 / self.xi) * t.ln();
            }
        }
        if sum.is_finite() {
            sum
        } else {
            f64::INFINITY
        }
    }
}

/// A cost function for argmin from a closure.
struct Cost<F: Fn(&[f64]) -> f64>(F);

impl<F: Fn(&[f64]) -> f64> CostFunction for Cost<F> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Self::Param) -> Result<f64, ArgminError> {
        let c = (self.0)(p);
        Ok(if c.is_finite() { c } else { f64::MAX })
    }
}

/// Nelder-Mead from `start` with initial steps `step`, restarted once
/// from its best point. `None` if it never reached a finite cost.
fn minimise(f: impl Fn(&[f64]) -> f64, start: Vec<f64>, step: &[f64]) -> Option<Vec<f64>> {
    let cost = Cost(f);
    let mut best = start;
    for _ in 0..2 {
        let mut simplex = vec![best.clone()];
        for (i, s) in step.iter().enumerate() {
            let mut p = best.clone();
            p[i] += s;
            simplex.push(p);
        }
        let solver = NelderMead::new(simplex).with_sd_tolerance(1e-12).ok()?;
        let res = Executor::new(Cost(&cost.0), solver).configure(|s| s.max_iters(4000)).run().ok()?;
        best = res.state().get_best_param()?.clone();
    }
    let c = (cost.0)(&best);
    c.is_finite().then_some(best)
}

/// Maximum-likelihood GEV fit of `x`; `gumbel` fixes `ξ = 0`.
pub fn fit_gev(x: &[f64], gumbel: bool) -> Option<Gev> {
    let (m, sd) = mean_sd(x);
    if x.len() < 3 || sd <= 0.0 {
        return None;
    }
    let z: Vec<f64> = x.iter().map(|v| (v - m) / sd).collect();
    // Gumbel moments of the standardised sample: σ = √6/π, μ = -γ σ.
    let s0 = 6f64.sqrt() / std::f64::consts::PI;
    let mu0 = -0.577_215_664_9 * s0;
    let p = if gumbel {
        minimise(|p| Gev { mu: p[0], sigma: p[1].exp(), xi: 0.0 }.nll(&z), vec![mu0, s0.ln()], &[0.2, 0.2])?
    } else {
        // Start from the Gumbel fit, a little off ξ = 0.
        let g = fit_gev(x, true)?;
        let start = vec![(g.mu - m) / sd, (g.sigma / sd).ln(), 0.05];
        minimise(|p| Gev { mu: p[0], sigma: p[1].exp(), xi: p[2] }.nll(&z), start, &[0.2, 0.2, 0.1])?
    };
    let xi = if gumbel { 0.0 } else { p[2] };
    Some(Gev { mu: m + sd * p[0], sigma: sd * p[1].exp(), xi })
}

/// Maximum-likelihood GPD fit of the exceedances `y` (all > 0) over `u`,
/// with `rate` = fraction of jobs above `u`.
pub fn fit_gpd(y: &[f64], u: f64, rate: f64) -> Option<Gpd> {
    let (m, _) = mean_sd(y);
    if y.len() < 3 || m <= 0.0 {
        return None;
    }
    let z: Vec<f64> = y.iter().map(|v| v / m).collect();
    let p = minimise(|p| Gpd { u: 0.0, sigma: p[0].exp(), xi: p[1], rate }.nll(&z), vec![0.0, 0.05], &[0.2, 0.1])?;
    Some(Gpd { u, sigma: m * p[0].exp(), xi: p[1], rate })
}

/// The MBPTA-CV exponential tail.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CvTail {
    /// Threshold (the value just below the `k` largest).
    pub u: f64,
    /// Exceedances used.
    pub k: usize,
    /// Mean exceedance (the exponential's scale).
    pub beta: f64,
    /// CV of the exceedances at the chosen `k`.
    pub cv: f64,
    /// Fraction of jobs above `u`.
    pub rate: f64,
}

impl CvTail {
    pub fn exceedance(&self, x: f64) -> f64 {
        self.rate * (-(x - self.u).max(0.0) / self.beta).exp()
    }

    pub fn pwcet(&self, p: f64) -> f64 {
        self.u + self.beta * (self.rate / p).ln()
    }
}

/// The CV curve: `(k, CV_k)` for the grid of exceedance counts.
pub fn cv_curve(sorted_desc: &[f64]) -> Vec<(usize, f64)> {
    let n = sorted_desc.len();
    let kmax = n / 2;
    if kmax < MIN_EXCEEDANCES {
        return Vec::new();
    }
    let step = ((kmax - MIN_EXCEEDANCES) / 60).max(1);
    (MIN_EXCEEDANCES..=kmax)
        .step_by(step)
        .filter_map(|k| {
            let u = sorted_desc[k];
            let e: Vec<f64> = sorted_desc[..k].iter().map(|v| v - u).collect();
            let (m, sd) = mean_sd(&e);
            (m > 0.0).then_some((k, sd / m))
        })
        .collect()
}

/// MBPTA-CV: `Ok(tail)` if the tail is exponential or lighter, `Err(why)`.
pub fn mbpta_cv(x: &[f64]) -> Result<CvTail, String> {
    let mut s = x.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    let curve = cv_curve(&s);
    let Some(&(k0, cv0)) = curve.first() else {
        return Err(format!("too few jobs for the CV test ({} < {})", x.len(), 2 * MIN_EXCEEDANCES));
    };
    let band = |k: usize| 1.0 + 1.96 / (k as f64).sqrt();
    if cv0 > band(k0) {
        return Err(format!(
            "tail heavier than exponential: CV {cv0:.3} of the {k0} largest exceedances is above {:.3}",
            band(k0)
        ));
    }
    let (k, cv) = curve.iter().take_while(|(k, cv)| *cv <= band(*k)).last().copied().unwrap_or((k0, cv0));
    let u = s[k];
    let beta = s[..k].iter().map(|v| v - u).sum::<f64>() / k as f64;
    Ok(CvTail { u, k, beta, cv, rate: k as f64 / x.len() as f64 })
}

/// A pWCET bound at one exceedance probability; `value: None` with the
/// fit's `withheld` reason.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bound {
    pub exceedance: f64,
    pub value: Option<f64>,
}

/// One fit as the report shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fit<P> {
    pub params: Option<P>,
    pub pwcet: Vec<Bound>,
    /// Why there is no number (sample too small, test failed, no convergence).
    pub withheld: Option<String>,
}

impl<P> Fit<P> {
    fn none(why: String) -> Fit<P> {
        Fit {
            params: None,
            pwcet: EXCEEDANCES.iter().map(|&p| Bound { exceedance: p, value: None }).collect(),
            withheld: Some(why),
        }
    }

    /// Parameters shown, numbers held back for `why` (a failed test).
    fn hold(params: P, why: &str) -> Fit<P> {
        Fit { params: Some(params), ..Fit::none(why.to_string()) }
    }

    fn with(params: P, bound: impl Fn(&P, f64) -> Option<f64>) -> Fit<P> {
        let pwcet = EXCEEDANCES.iter().map(|&p| Bound { exceedance: p, value: bound(&params, p) }).collect();
        Fit { params: Some(params), pwcet, withheld: None }
    }
}

/// Block-maxima GEV parameters with the block size.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlockFit {
    #[serde(flatten)]
    pub gev: Gev,
    pub block: usize,
    pub blocks: usize,
}

/// Everything pWCET for one sample (job times in job order).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pwcet {
    pub jobs: usize,
    pub iid: Iid,
    /// The headline: MBPTA-CV's exponential tail.
    pub mbpta_cv: Fit<CvTail>,
    pub gumbel: Fit<BlockFit>,
    pub gev: Fit<BlockFit>,
    pub gpd: Fit<Gpd>,
    /// Why no pWCET is printed for this sample at all, if so.
    pub withheld: Option<String>,
}

/// Block size for `n` jobs.
pub fn block_size(n: usize) -> usize {
    (n / 100).max(10)
}

/// Runs every test and fit on `x`.
pub fn analyse(x: &[f64]) -> Pwcet {
    let n = x.len();
    let iid = iid(x);
    let (_, sd) = mean_sd(x);
    let withheld = if n < MIN_JOBS {
        Some(format!("sample too small: {n} jobs, pWCET needs at least {MIN_JOBS}"))
    } else if sd == 0.0 {
        Some(format!("every job took the same time ({}); there is no distribution to fit", x[0]))
    } else if !iid.pass {
        let mut failed = Vec::new();
        for (name, t) in [("Ljung-Box", &iid.ljung_box), ("runs", &iid.runs), ("KS halves", &iid.ks_halves)] {
            match t {
                Some(t) if !t.pass => failed.push(format!("{name} p = {:.3}", t.p_value)),
                None => failed.push(format!("{name} not applicable")),
                _ => {}
            }
        }
        Some(format!("the i.i.d. hypothesis is rejected ({}); EVT does not apply to this trace", failed.join(", ")))
    } else {
        None
    };
    let blocked = |why: &str| -> (Fit<BlockFit>, Fit<BlockFit>) { (Fit::none(why.into()), Fit::none(why.into())) };
    let b = block_size(n);
    let maxima: Vec<f64> = x.chunks_exact(b).map(|c| c.iter().copied().fold(f64::MIN, f64::max)).collect();
    let (gumbel, gev) = if n < MIN_JOBS || sd == 0.0 || maxima.len() < MIN_BLOCKS {
        blocked(withheld.as_deref().unwrap_or("too few blocks"))
    } else {
        let fit = |g: bool| -> Fit<BlockFit> {
            match fit_gev(&maxima, g) {
                None => Fit::none("the likelihood fit did not converge".into()),
                Some(gev) => {
                    let bf = BlockFit { gev, block: b, blocks: maxima.len() };
                    match &withheld {
                        Some(w) => Fit::hold(bf, w),
                        None => Fit::with(bf, |f, p| Some(f.gev.pwcet(p, f.block)).filter(|v| v.is_finite())),
                    }
                }
            }
        };
        (fit(true), fit(false))
    };
    let mut sorted = x.to_vec();
    sorted.sort_by(f64::total_cmp);
    let k = ((n as f64 * GPD_TAIL) as usize).max(MIN_EXCEEDANCES);
    let gpd = if n < MIN_JOBS || sd == 0.0 || k >= n {
        Fit::none(withheld.clone().unwrap_or_default())
    } else {
        let u = sorted[n - k - 1];
        let y: Vec<f64> = sorted[n - k..].iter().map(|v| v - u).filter(|&v| v > 0.0).collect();
        if y.len() < MIN_EXCEEDANCES {
            Fit::none(format!("only {} jobs strictly above the threshold {u}", y.len()))
        } else {
            match fit_gpd(&y, u, y.len() as f64 / n as f64) {
                None => Fit::none("the likelihood fit did not converge".into()),
                Some(g) => match &withheld {
                    Some(w) => Fit::hold(g, w),
                    None => Fit::with(g, |g, p| (p < g.rate).then(|| g.pwcet(p)).filter(|v| v.is_finite())),
                },
            }
        }
    };
    let mbpta_cv = if n < MIN_JOBS || sd == 0.0 {
        Fit::none(withheld.clone().unwrap_or_default())
    } else {
        match mbpta_cv(x) {
            Err(why) => Fit::none(why),
            Ok(t) => match &withheld {
                Some(w) => Fit::hold(t, w),
                None => Fit::with(t, |t, p| (p < t.rate).then(|| t.pwcet(p))),
            },
        }
    };
    Pwcet { jobs: n, iid, mbpta_cv, gumbel, gev, gpd, withheld }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn uniforms(n: usize, seed: u64) -> Vec<f64> {
        let mut r = StdRng::seed_from_u64(seed);
        (0..n).map(|_| r.random_range(f64::EPSILON..1.0)).collect()
    }

    fn gev_sample(g: Gev, n: usize, seed: u64) -> Vec<f64> {
        // Inverse CDF: x = μ + σ/ξ ((-ln U)^(-ξ) - 1), or μ - σ ln(-ln U).
        uniforms(n, seed)
            .into_iter()
            .map(|u| {
                let l = -u.ln();
                if g.xi == 0.0 {
                    g.mu - g.sigma * l.ln()
                } else {
                    g.mu + g.sigma / g.xi * (l.powf(-g.xi) - 1.0)
                }
            })
            .collect()
    }

    /// Tolerances for 2000 draws: the MLE's standard errors are about
    /// 0.025 σ (μ), 0.02 σ (σ) and 0.02 (ξ); we allow about 3-4 of them.
    #[test]
    fn gev_fit_recovers_heavy_and_bounded_shapes() {
        for (truth, seed) in [(Gev { mu: 1e5, sigma: 2e3, xi: 0.2 }, 1), (Gev { mu: 500.0, sigma: 20.0, xi: -0.25 }, 2)]
        {
            let x = gev_sample(truth, 2000, seed);
            let f = fit_gev(&x, false).unwrap();
            assert!((f.mu - truth.mu).abs() < 0.1 * truth.sigma, "{f:?} vs {truth:?}");
            assert!((f.sigma / truth.sigma - 1.0).abs() < 0.08, "{f:?} vs {truth:?}");
            assert!((f.xi - truth.xi).abs() < 0.07, "{f:?} vs {truth:?}");
        }
    }

    #[test]
    fn gumbel_fit_recovers_its_parameters() {
        let truth = Gev { mu: 3e6, sigma: 4e4, xi: 0.0 };
        let x = gev_sample(truth, 2000, 3);
        let f = fit_gev(&x, true).unwrap();
        assert_eq!(f.xi, 0.0);
        assert!((f.mu - truth.mu).abs() < 0.1 * truth.sigma, "{f:?}");
        assert!((f.sigma / truth.sigma - 1.0).abs() < 0.06, "{f:?}");
        // A GEV fit of Gumbel data finds ξ near 0.
        let g = fit_gev(&x, false).unwrap();
        assert!(g.xi.abs() < 0.06, "{g:?}");
    }

    #[test]
    fn gpd_fit_recovers_its_parameters() {
        for (sigma, xi, seed) in [(50.0, 0.15, 4), (50.0, -0.2, 5), (10.0, 0.0, 6)] {
            // y = σ/ξ (U^(-ξ) - 1), or -σ ln U.
            let y: Vec<f64> = uniforms(3000, seed)
                .into_iter()
                .map(|u| if xi == 0.0 { -sigma * u.ln() } else { sigma / xi * (u.powf(-xi) - 1.0) })
                .collect();
            let f = fit_gpd(&y, 1000.0, 0.1).unwrap();
            assert!((f.sigma / sigma - 1.0).abs() < 0.08, "{f:?} vs σ {sigma} ξ {xi}");
            assert!((f.xi - xi).abs() < 0.06, "{f:?} vs σ {sigma} ξ {xi}");
            assert_eq!((f.u, f.rate), (1000.0, 0.1));
        }
    }

    #[test]
    fn quantiles_invert_the_distributions() {
        let g = Gev { mu: 10.0, sigma: 2.0, xi: 0.1 };
        for q in [0.5, 1e-3, 1e-9] {
            let x = g.quantile_exceeded(q);
            assert!((g.exceedance(x) / q - 1.0).abs() < 1e-6, "{q} {x}");
        }
        let gu = Gev { xi: 0.0, ..g };
        assert!((gu.exceedance(gu.quantile_exceeded(1e-6)) / 1e-6 - 1.0).abs() < 1e-6);
        // Per job: a block of 10 exceeds x with 1 - (1 - p)^10 ≈ 10 p.
        let x = gu.pwcet(1e-9, 10);
        assert!((gu.exceedance(x) / 1e-8 - 1.0).abs() < 1e-6);
        let p = Gpd { u: 100.0, sigma: 5.0, xi: -0.1, rate: 0.1 };
        assert!((p.exceedance(p.pwcet(1e-6)) / 1e-6 - 1.0).abs() < 1e-9);
        let t = CvTail { u: 100.0, k: 10, beta: 3.0, cv: 1.0, rate: 0.05 };
        assert!((t.exceedance(t.pwcet(1e-12)) / 1e-12 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn iid_tests_accept_noise_and_reject_a_trend_and_a_step() {
        let noise = uniforms(1000, 7);
        let t = iid(&noise);
        assert!(t.pass, "{t:?}");
        assert_eq!(t.lags, 20);
        // A slow sawtooth: strongly autocorrelated, few runs.
        let saw: Vec<f64> = (0..1000).map(|i| (i % 100) as f64 + noise[i]).collect();
        let t = iid(&saw);
        assert!(!t.ljung_box.as_ref().unwrap().pass && !t.runs.as_ref().unwrap().pass, "{t:?}");
        // Second half shifted: the halves differ.
        let step: Vec<f64> = (0..1000).map(|i| noise[i] + if i < 500 { 0.0 } else { 0.5 }).collect();
        assert!(!iid(&step).ks_halves.unwrap().pass);
    }

    #[test]
    fn test_statistics_against_hand_computed_values() {
        // Runs: 1 2 3 4 | median 2.5 -> - - + + : 2 runs, n1 = n2 = 2,
        // μ = 2*2*2/4 + 1 = 3, σ² = (2 * 1) / 3, z = (2 - 3) / 0.8165 = -1.2247.
        let r = runs_test(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!((r.statistic + 1.224_744_9).abs() < 1e-6, "{r:?}");
        // KS: disjoint samples have D = 1.
        assert_eq!(ks_two_sample(&[1.0, 2.0], &[3.0, 4.0]).unwrap().statistic, 1.0);
        // Ljung-Box on 1 -1 1 -1 ...: ρ_1 = -(n-1)/n for n = 10 -> -0.9.
        let alt: Vec<f64> = (0..10).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let lb = ljung_box(&alt, 1).unwrap();
        // Q = 10 * 12 * 0.81 / 9 = 10.8
        assert!((lb.statistic - 10.8).abs() < 1e-9, "{lb:?}");
        assert!(lb.p_value < 0.01);
        // Kolmogorov Q(1) = 0.27 (tables).
        assert!((kolmogorov_q(1.0) - 0.2700).abs() < 1e-3);
    }

    #[test]
    fn mbpta_cv_accepts_exponential_and_rejects_pareto() {
        let exp: Vec<f64> = uniforms(3000, 8).into_iter().map(|u| 1000.0 - 50.0 * u.ln()).collect();
        let t = mbpta_cv(&exp).unwrap();
        assert!((t.beta / 50.0 - 1.0).abs() < 0.25, "{t:?}");
        let pareto: Vec<f64> = uniforms(3000, 9).into_iter().map(|u| 1000.0 * u.powf(-1.0 / 1.5)).collect();
        let e = mbpta_cv(&pareto).unwrap_err();
        assert!(e.contains("heavier than exponential"), "{e}");
    }

    #[test]
    fn analyse_withholds_numbers_and_says_why() {
        let small = analyse(&uniforms(50, 10));
        assert!(small.withheld.as_ref().unwrap().contains("sample too small"));
        assert!(small.mbpta_cv.pwcet.iter().all(|b| b.value.is_none()));
        let flat = analyse(&vec![5.0; 500]);
        assert!(flat.withheld.as_ref().unwrap().contains("same time"));
        let saw: Vec<f64> = (0..1000).map(|i| (i % 100) as f64).collect();
        let a = analyse(&saw);
        assert!(a.withheld.as_ref().unwrap().contains("i.i.d. hypothesis is rejected"), "{:?}", a.withheld);
        assert!(a.gev.params.is_some() && a.gev.pwcet.iter().all(|b| b.value.is_none()));
        // i.i.d. Gumbel data: numbers, increasing as p falls.
        let x = gev_sample(Gev { mu: 1000.0, sigma: 10.0, xi: 0.0 }, 2000, 12);
        let a = analyse(&x);
        assert_eq!(a.withheld, None, "{:?}", a.iid);
        for f in [&a.mbpta_cv.pwcet, &a.gumbel.pwcet, &a.gev.pwcet, &a.gpd.pwcet] {
            let v: Vec<f64> = f.iter().map(|b| b.value.unwrap()).collect();
            assert!(v.windows(2).all(|w| w[0] < w[1]), "{v:?}");
        }
        // Gumbel per job at 1e-6: μ - σ ln(-ln(1 - 1e-6)) ≈ 1000 + 10 * 13.8.
        // From 100 block maxima σ has a standard error of about 8 %, which is
        // about 9 at this extrapolation: allow 2.5 of them.
        let g = a.gumbel.pwcet[1].value.unwrap();
        assert!((g - 1138.2).abs() < 22.0, "{g}");
    }
}
