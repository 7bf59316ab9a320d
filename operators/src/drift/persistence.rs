//! When a finding past its threshold becomes drift: it must stay past it at
//! `patience` evaluations in a row **and** across evaluations whose current
//! windows share no value (the window at the first crossing and the one now are
//! disjoint), so that one unlucky stretch of values, seen again by every
//! evaluation whose window still holds it, is not an alarm: the evidence has to
//! renew itself once completely.

/// Where an evaluation's current window ends: the values seen so far and the window's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub seen: u64,
    pub window: u64,
}

/// One finding's run of evaluations past its threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Streak {
    count: u32,
    /// Values seen at the first crossing of this run.
    first: Option<u64>,
    drift: bool,
}

impl Streak {
    /// Records one evaluation (`crossed`: past its threshold; `at`: where its
    /// window ends, `None` when it has no window) and returns whether the finding
    /// is drift now.
    pub fn update(&mut self, crossed: bool, at: Option<Evidence>, patience: u32) -> bool {
        if !crossed {
            *self = Streak::default();
            return false;
        }
        let seen = at.map(|e| e.seen);
        // a reset of the windows (fewer values seen than at the first crossing) starts over
        if self.count == 0 || matches!((self.first, seen), (Some(f), Some(s)) if s < f) {
            *self = Streak { count: 0, first: seen, drift: false };
        }
        self.count = self.count.saturating_add(1);
        let fresh = match (self.first, at) {
            (Some(first), Some(e)) => e.seen >= first.saturating_add(e.window),
            _ => true,
        };
        self.drift = self.count >= patience.max(1) && fresh;
        self.drift
    }

    pub fn drift(&self) -> bool {
        self.drift
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_needs_patience_and_a_fresh_window() {
        let at = |seen| Some(Evidence { seen, window: 100 });
        let mut s = Streak::default();
        // evaluations every 40 values: the windows at 100 and 200 are disjoint
        assert!(!s.update(true, at(100), 2));
        assert!(!s.update(true, at(140), 2));
        assert!(!s.update(true, at(180), 2));
        assert!(s.update(true, at(200), 2));
        assert!(s.update(true, at(240), 2));
        assert!(!s.update(false, at(280), 2));
        assert!(!s.update(true, at(320), 2));
        // evaluations further apart than a window: patience decides
        let mut s = Streak::default();
        assert!(!s.update(true, at(1000), 2));
        assert!(s.update(true, at(1500), 2));
        // a reset of the windows starts the run over
        assert!(!s.update(true, at(50), 2));
        // without windows: patience alone
        let mut s = Streak::default();
        assert!(!s.update(true, None, 3));
        assert!(!s.update(true, None, 3));
        assert!(s.update(true, None, 3));
    }
}
