//! The free-value search shared by addresses, VNIs and MACs, over integers.

/// Returns the first value of `lo..=hi` that is neither `excluded` nor in `used`.
/// `used` must be sorted ascending. It is walked once, so the cost grows with the
/// number of used values in front of the first free one, not with the range size.
pub(crate) fn first_free(
    lo: u128,
    hi: u128,
    excluded: Option<u128>,
    used: impl Iterator<Item = u128>,
) -> Option<u128> {
    if lo > hi {
        return None;
    }
    let mut used = used.peekable();
    let mut candidate = lo;
    loop {
        while used.next_if(|&value| value < candidate).is_some() {}
        let blocked = excluded == Some(candidate) || used.peek() == Some(&candidate);
        if !blocked {
            return Some(candidate);
        }
        if candidate == hi {
            return None;
        }
        candidate += 1;
    }
}

/// Like [`first_free`], but starts after `start_after` and wraps around to `lo`, so
/// values released recently are reused last. A `start_after` outside `lo..hi` starts
/// at `lo`. `used_in(a, b)` returns the used values of `a..=b` in ascending order.
pub(crate) fn first_free_wrapping<I>(
    lo: u128,
    hi: u128,
    excluded: Option<u128>,
    start_after: Option<u128>,
    used_in: impl Fn(u128, u128) -> I,
) -> Option<u128>
where
    I: Iterator<Item = u128>,
{
    let start = match start_after {
        Some(after) if after >= lo && after < hi => after + 1,
        _ => lo,
    };
    if let Some(found) = first_free(start, hi, excluded, used_in(start, hi)) {
        return Some(found);
    }
    if start > lo {
        return first_free(lo, start - 1, excluded, used_in(lo, start - 1));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_free_skips_used_and_excluded() {
        let used = [1, 2, 4];
        assert_eq!(first_free(1, 10, Some(3), used.into_iter()), Some(5));
    }

    #[test]
    fn first_free_ignores_used_below_range() {
        let used = [0, 1, 5];
        assert_eq!(first_free(2, 10, None, used.into_iter()), Some(2));
    }

    #[test]
    fn first_free_excluded_also_used() {
        let used = [3, 4];
        assert_eq!(first_free(3, 10, Some(3), used.into_iter()), Some(5));
    }

    #[test]
    fn first_free_full_range() {
        assert_eq!(first_free(1, 3, Some(2), [1, 3].into_iter()), None);
        assert_eq!(first_free(5, 4, None, std::iter::empty()), None);
    }

    #[test]
    fn first_free_at_top_of_u128() {
        let top = u128::MAX;
        assert_eq!(
            first_free(top - 1, top, None, [top - 1].into_iter()),
            Some(top)
        );
        assert_eq!(
            first_free(top - 1, top, None, [top - 1, top].into_iter()),
            None
        );
    }

    #[test]
    fn wrapping_search_returns_to_start() {
        let used = [1, 2, 8, 9, 10];
        let used_in = |a: u128, b: u128| used.into_iter().filter(move |v| (a..=b).contains(v));
        assert_eq!(first_free_wrapping(1, 10, None, Some(7), used_in), Some(3));
        assert_eq!(first_free_wrapping(1, 10, None, Some(10), used_in), Some(3));
        assert_eq!(first_free_wrapping(1, 10, None, None, used_in), Some(3));
        assert_eq!(first_free_wrapping(1, 10, None, Some(3), used_in), Some(4));
    }
}
