//! The searches the tests share: the highest rate that passes (RFC 2544 throughput and partial
//! drop, RFC 2889 meshed throughput and learning rate) and the largest count that passes (RFC 2544
//! back-to-back bursts, RFC 2889 address caching). Each caller runs its own first trial at the top
//! (its flat-out rate, say) and calls these only when that one fails.

/// Bisects (0, `top`) `steps` times for the highest rate at which `trial` passes. `trial(rate)`
/// returns `Some(reached)` when it passes, `reached` being the rate to credit (the rate really
/// offered, which can fall short of the one asked; never more than asked), and `None` when it
/// fails. Returns the highest rate credited, 0 when none passed.
pub fn highest_rate(
    top: f64,
    steps: u32,
    mut trial: impl FnMut(f64) -> Result<Option<f64>, String>,
) -> Result<f64, String> {
    let (mut lo, mut hi) = (0.0, top);
    for _ in 0..steps {
        let mid = (lo + hi) / 2.0;
        match trial(mid)? {
            Some(reached) => lo = reached.min(mid),
            None => hi = mid,
        }
    }
    Ok(lo)
}

/// The largest count for which `pass` holds: doubling from `start` up to `max`, then at most
/// `steps` bisections between the last count that passed and the first that failed. Returns
/// `(n, true)` when every doubling up to `max` passed (`n` is then a lower bound).
pub fn largest_count(
    start: u64,
    max: u64,
    steps: u32,
    mut pass: impl FnMut(u64) -> Result<bool, String>,
) -> Result<(u64, bool), String> {
    let (mut good, mut n) = (0, start.max(1));
    while n <= max {
        if !pass(n)? {
            break;
        }
        good = n;
        n *= 2;
    }
    if n > max {
        return Ok((good, true));
    }
    let (mut lo, mut hi) = (good, n);
    for _ in 0..steps {
        let mid = (lo + hi) / 2;
        if mid == lo {
            break;
        }
        if pass(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok((lo, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_search_closes_in_from_below() {
        let mut asked = Vec::new();
        let r = highest_rate(1.0, 10, |r| {
            asked.push(r);
            Ok((r <= 0.3).then_some(r))
        })
        .unwrap();
        assert!(r <= 0.3 && r > 0.3 - 1.0 / 1024.0, "{r}");
        assert_eq!((asked.len(), asked[0]), (10, 0.5));
        // Credit is what the trial reached, not what was asked.
        // 0.5 -> 0.45, 0.725 -> 0.6525, 0.82625 -> 0.743625.
        let r = highest_rate(1.0, 3, |r| Ok(Some(r * 0.9))).unwrap();
        assert!((r - 0.743625).abs() < 1e-9, "{r}");
        assert_eq!(highest_rate(1.0, 5, |_| Ok(None)).unwrap(), 0.0);
        assert!(highest_rate(1.0, 5, |_| Err("boom".into())).is_err());
    }

    #[test]
    fn the_count_search_doubles_then_bisects() {
        assert_eq!(
            largest_count(64, 1 << 17, 20, |n| Ok(n <= 1000)).unwrap(),
            (1000, false)
        );
        // Everything passes: the largest doubling within the bound, flagged as a lower bound.
        assert_eq!(
            largest_count(256, 65536, 5, |_| Ok(true)).unwrap(),
            (65536, true)
        );
        // Even the first count fails: the bisection looks below it.
        assert_eq!(
            largest_count(64, 4096, 10, |n| Ok(n <= 10)).unwrap(),
            (10, false)
        );
        // Few steps leave the answer between the last pass and the first failure.
        let (n, all) = largest_count(64, 4096, 2, |n| Ok(n <= 1000)).unwrap();
        assert!(!all && (512..=1000).contains(&n), "{n}");
    }
}
