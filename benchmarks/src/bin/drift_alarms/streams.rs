//! Seeded drift-free streams of several kinds, and the shifts applied to them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A kind of stream, with the monitor that watches it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Gaussian,
    /// exp(N(0, 1)).
    Lognormal,
    /// Student's t with 3 degrees of freedom (infinite fourth moment).
    StudentT3,
    /// Poisson(3) counts: few distinct values, many ties.
    Poisson3,
    /// AR(1) with phi 0.9 (unit variance): each value worth about 1/19 of an independent one.
    Ar1,
    /// Five categories, shares 0.4/0.25/0.15/0.12/0.08 (categorical monitor).
    Categorical,
    /// Positive decisions at 5%, independent (positive-rate monitor).
    Bernoulli,
    /// Positive decisions at 5% in bursts of 8 on average (a card tester's run).
    BurstyBernoulli,
}

impl Kind {
    pub const ALL: [Kind; 8] =
        [Kind::Gaussian, Kind::Lognormal, Kind::StudentT3, Kind::Poisson3, Kind::Ar1, Kind::Categorical, Kind::Bernoulli, Kind::BurstyBernoulli];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Gaussian => "i.i.d. Gaussian",
            Kind::Lognormal => "lognormal (sigma 1)",
            Kind::StudentT3 => "Student-t, 3 df",
            Kind::Poisson3 => "Poisson(3) counts",
            Kind::Ar1 => "AR(1), phi 0.9",
            Kind::Categorical => "categorical, 5 values",
            Kind::Bernoulli => "decisions, 5% i.i.d.",
            Kind::BurstyBernoulli => "decisions, 5% in bursts of 8",
        }
    }
}

/// Values of one stream.
pub struct Gen {
    kind: Kind,
    rng: ChaCha8Rng,
    state: f64,
}

impl Gen {
    pub fn new(kind: Kind, seed: u64) -> Gen {
        let mut g = Gen { kind, rng: ChaCha8Rng::seed_from_u64(seed), state: 0.0 };
        if kind == Kind::Ar1 {
            g.state = g.normal();
        }
        g
    }

    pub fn normal(&mut self) -> f64 {
        // Box-Muller
        let u: f64 = self.rng.gen::<f64>().max(f64::MIN_POSITIVE);
        let v: f64 = self.rng.gen();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn poisson(&mut self, lambda: f64) -> f64 {
        let limit = (-lambda).exp();
        let (mut k, mut p) = (0.0, 1.0);
        loop {
            p *= self.rng.gen::<f64>();
            if p <= limit {
                return k;
            }
            k += 1.0;
        }
    }

    pub fn next(&mut self) -> f64 {
        match self.kind {
            Kind::Gaussian => self.normal(),
            Kind::Lognormal => self.normal().exp(),
            Kind::StudentT3 => {
                let z = self.normal();
                let chi2: f64 = (0..3).map(|_| self.normal().powi(2)).sum();
                z / (chi2 / 3.0).sqrt()
            }
            Kind::Poisson3 => self.poisson(3.0),
            Kind::Ar1 => {
                let phi: f64 = 0.9;
                self.state = phi * self.state + (1.0 - phi * phi).sqrt() * self.normal();
                self.state
            }
            Kind::Categorical => {
                let u: f64 = self.rng.gen();
                [0.4, 0.65, 0.8, 0.92].iter().position(|c| u < *c).unwrap_or(4) as f64
            }
            Kind::Bernoulli => (self.rng.gen::<f64>() < 0.05) as u8 as f64,
            Kind::BurstyBernoulli => {
                // in a burst (state 1) every decision is positive; bursts last 8 on
                // average and start so that 5% of decisions are in one
                let (leave, enter) = (1.0 / 8.0, 0.05 / 0.95 / 8.0);
                let u: f64 = self.rng.gen();
                self.state = if self.state > 0.5 { (u >= leave) as u8 as f64 } else { (u < enter) as u8 as f64 };
                self.state
            }
        }
    }
}

/// A change applied to a Gaussian stream from a position on.
#[derive(Clone, Copy, Debug)]
pub enum Shift {
    /// Mean moved by this many standard deviations.
    Mean(f64),
    /// Values times this (standard deviation x this).
    Scale(f64),
}

impl Shift {
    pub fn name(self) -> String {
        match self {
            Shift::Mean(d) => format!("mean +{d} sd"),
            Shift::Scale(s) => format!("scale x{s}"),
        }
    }

    pub fn apply(self, x: f64) -> f64 {
        match self {
            Shift::Mean(d) => x + d,
            Shift::Scale(s) => x * s,
        }
    }
}

/// A 0/1 error stream with rate `p` before `at` and `q` from `at` on.
pub fn bernoulli_errors(seed: u64, len: usize, p: f64, q: f64, at: usize) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|i| (rng.gen::<f64>() < if i < at { p } else { q }) as u8 as f64).collect()
}
