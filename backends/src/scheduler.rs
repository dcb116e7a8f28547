//! Choosing which work spec a `get_work` call draws from.
//!
//! The backend first filters the specs (requested names, runtime, paused,
//! weight, `max_running`, something to do); this module makes the choice
//! among the survivors, as go-coordinate's scheduler does:
//!
//! 1. only the specs with the highest spec priority remain (absolute
//!    preemption);
//! 2. with `W` the sum of their weights and `P` the sum of their pending
//!    counts, spec *i* scores `weight_i·(P+1) − W·pending_i`; specs scoring
//!    ≤ 0 are dropped and one is drawn with probability proportional to
//!    its score.
//!
//! The scores always sum to `W > 0`, and they favour specs whose share of
//! pending units is below their share of weight, so pending counts are
//! pushed toward proportion with the weights while every eligible spec
//! keeps a chance.

use rand::Rng;

use crate::clock::Time;
use crate::model::{GetWork, SpecMeta};

/// Whether a spec whose available and pending counts are given may get a
/// synthetic continuous unit now: declared and still continuous, nothing
/// available or pending, and its interval has passed.
pub fn can_start_continuous(m: &SpecMeta, available: u64, pending: u64, now: Time) -> bool {
    m.continuous && available == 0 && pending == 0 && m.next_continuous.is_none_or(|t| now >= t)
}

/// Whether a `get_work` request may draw from a spec (the filter before
/// the choice): named in the request (or none named), of a requested
/// runtime, not paused, with weight, below `max_running`, and with a unit
/// available or a continuous unit to start.
pub fn eligible(name: &str, m: &SpecMeta, available: u64, pending: u64, opts: &GetWork, now: Time) -> bool {
    (opts.work_spec_names.is_empty() || opts.work_spec_names.contains(name))
        && (opts.runtimes.is_empty() || opts.runtimes.contains(&m.runtime))
        && !m.paused
        && m.weight > 0
        && (m.max_running <= 0 || pending < m.max_running as u64)
        && (available > 0 || can_start_continuous(m, available, pending, now))
}

/// How many units one `get_work` may take from the chosen spec: at least
/// one, at most `max_getwork`, and no more than `max_running` leaves room
/// for (may be ≤ 0 when the spec is full).
pub fn batch_size(m: &SpecMeta, max_jobs: usize, pending: u64) -> i64 {
    let mut n = max_jobs.max(1) as i64;
    if m.max_getwork > 0 {
        n = n.min(m.max_getwork);
    }
    if m.max_running > 0 {
        n = n.min(m.max_running - pending as i64);
    }
    n
}

/// What the scheduler needs to know about an eligible spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Spec priority.
    pub priority: i64,
    /// Spec weight (> 0 for eligible specs).
    pub weight: i64,
    /// Units currently pending in the spec.
    pub pending: u64,
}

/// Picks the index of one candidate, or `None` if there are none.
pub fn choose<R: Rng + ?Sized>(candidates: &[Candidate], rng: &mut R) -> Option<usize> {
    let top = candidates.iter().map(|c| c.priority).max()?;
    let tier = || candidates.iter().enumerate().filter(move |(_, c)| c.priority == top && c.weight > 0);
    let total_weight: i128 = tier().map(|(_, c)| c.weight as i128).sum();
    let total_pending: i128 = tier().map(|(_, c)| c.pending as i128).sum();
    let score = |c: &Candidate| c.weight as i128 * (total_pending + 1) - total_weight * c.pending as i128;
    let total: i128 = tier().map(|(_, c)| score(c)).filter(|&s| s > 0).sum();
    if total <= 0 {
        // Only possible if no candidate of the top priority has weight.
        return tier().next().map(|(i, _)| i);
    }
    let mut r = rng.random_range(0..total);
    for (i, c) in tier() {
        let s = score(c);
        if s <= 0 {
            continue;
        }
        if r < s {
            return Some(i);
        }
        r -= s;
    }
    unreachable!("the draw is below the sum of the scores")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn cand(priority: i64, weight: i64, pending: u64) -> Candidate {
        Candidate { priority, weight, pending }
    }

    #[test]
    fn empty_has_no_choice() {
        assert_eq!(choose(&[], &mut StdRng::seed_from_u64(1)), None);
    }

    #[test]
    fn priority_beats_weight() {
        let mut rng = StdRng::seed_from_u64(7);
        let cands = [cand(0, 1000, 0), cand(1, 1, 50), cand(0, 500, 0)];
        for _ in 0..1000 {
            assert_eq!(choose(&cands, &mut rng), Some(1));
        }
    }

    #[test]
    fn fresh_specs_are_drawn_by_weight() {
        let mut rng = StdRng::seed_from_u64(42);
        let cands = [cand(0, 1, 0), cand(0, 2, 0)];
        let mut hits = [0u32; 2];
        for _ in 0..30_000 {
            hits[choose(&cands, &mut rng).unwrap()] += 1;
        }
        let ratio = hits[1] as f64 / hits[0] as f64;
        assert!((1.9..2.1).contains(&ratio), "hits {hits:?}");
    }

    #[test]
    fn pending_counts_converge_to_the_weights() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut cands = [cand(0, 1, 0), cand(0, 2, 0)];
        for _ in 0..3000 {
            let i = choose(&cands, &mut rng).unwrap();
            cands[i].pending += 1;
        }
        let (a, b) = (cands[0].pending as f64, cands[1].pending as f64);
        assert!((b / a - 2.0).abs() < 0.05, "pending {a} vs {b}");
    }

    #[test]
    fn overloaded_spec_is_never_chosen() {
        // a (w=1, p=0), b (w=2, p=2): P=2, scores a=3, b=0.
        let mut rng = StdRng::seed_from_u64(9);
        let cands = [cand(0, 1, 0), cand(0, 2, 2)];
        for _ in 0..1000 {
            assert_eq!(choose(&cands, &mut rng), Some(0));
        }
    }
}
