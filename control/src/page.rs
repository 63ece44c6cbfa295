//! Keyset pagination of the list calls (spec section 8).
//!
//! # Design
//!
//! Every row has a stable creation order (its store `seq`). A page starts
//! after (or, walking backwards, before) a *marker*: the id of the last item
//! the client saw, turned into its `seq` with one index lookup. The store
//! then reads rows `seq > marker ORDER BY seq LIMIT n` (or `seq < marker
//! ORDER BY seq DESC`), so the cost of a page does not depend on how deep
//! it is, and rows created between two calls always land after every marker
//! already handed out: a forward walk never repeats or skips an item.
//!
//! Filters are applied before paging: rows are read in keyset batches and
//! the filter decides which are kept until the page holds `limit + 1`
//! items (the extra one only tells whether a next page exists).
//!
//! # Limitations
//!
//! - With a filter that rejects most rows, a page reads as many rows as it
//!   takes to find `limit + 1` matches (bounded by the list's size).
//! - A marker that was deleted since it was handed out is unknown: the
//!   client starts over (400, as Nova and Neutron do).
//! - The previous link of a page is offered whenever the page started after
//!   a marker, even if no item before it passes the filter.

use crate::error::Result;

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Id of the item the page starts after (before, when `reverse`).
    pub marker: Option<String>,
    /// Page size, at least 1.
    pub limit: usize,
    /// Walk backwards: the page holds the items just before the marker (the
    /// last items of the list when there is no marker), still answered in
    /// creation order.
    pub reverse: bool,
}

/// One page of a list, in creation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Items exist after the last one (a `next` link is due).
    pub has_next: bool,
    /// Items exist before the first one (a `previous` link is due).
    pub has_previous: bool,
}

/// Walks a keyset-ordered list: `fetch(from, n)` returns up to `n` rows
/// strictly after `from` in the walk's direction, each with its `seq`;
/// `view` turns a row into an item and `keep` is the filter.
pub(crate) fn walk<R, V>(
    from: Option<i64>,
    req: &PageRequest,
    mut fetch: impl FnMut(Option<i64>, usize) -> Result<Vec<(i64, R)>>,
    mut view: impl FnMut(R) -> V,
    keep: &dyn Fn(&V) -> bool,
) -> Result<Page<V>> {
    let limit = req.limit.max(1);
    let want = limit + 1;
    let mut items = Vec::with_capacity(want.min(1024));
    let mut cursor = from;
    'scan: loop {
        let batch = want - items.len();
        let rows = fetch(cursor, batch)?;
        let exhausted = rows.len() < batch;
        for (seq, row) in rows {
            cursor = Some(seq);
            let v = view(row);
            if keep(&v) {
                items.push(v);
                if items.len() == want {
                    break 'scan;
                }
            }
        }
        if exhausted {
            break;
        }
    }
    let extra = items.len() > limit;
    items.truncate(limit);
    let after_marker = from.is_some();
    let (has_next, has_previous) = if req.reverse {
        items.reverse();
        (after_marker, extra)
    } else {
        (extra, after_marker)
    };
    Ok(Page {
        items,
        has_next,
        has_previous,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list of seqs 1..=n with a fetch that records the rows it read.
    fn fetcher(
        n: i64,
        reverse: bool,
        read: &std::cell::Cell<usize>,
    ) -> impl FnMut(Option<i64>, usize) -> Result<Vec<(i64, i64)>> + '_ {
        move |from, count| {
            let rows: Vec<(i64, i64)> = if reverse {
                let start = from.map_or(n, |f| f - 1);
                (1..=start).rev().take(count).map(|s| (s, s)).collect()
            } else {
                let start = from.map_or(1, |f| f + 1);
                (start..=n).take(count).map(|s| (s, s)).collect()
            };
            read.set(read.get() + rows.len());
            Ok(rows)
        }
    }

    fn req(marker: Option<i64>, limit: usize, reverse: bool) -> PageRequest {
        PageRequest {
            marker: marker.map(|m| m.to_string()),
            limit,
            reverse,
        }
    }

    #[test]
    fn first_page_reads_one_more_row_than_the_limit() {
        let read = std::cell::Cell::new(0);
        let p = walk(
            None,
            &req(None, 3, false),
            fetcher(10, false, &read),
            |r| r,
            &|_| true,
        )
        .unwrap();
        assert_eq!(p.items, vec![1, 2, 3]);
        assert!(p.has_next && !p.has_previous);
        assert_eq!(read.get(), 4);
    }

    #[test]
    fn deep_page_costs_the_same_as_the_first() {
        let read = std::cell::Cell::new(0);
        let p = walk(
            Some(99_000),
            &req(Some(99_000), 3, false),
            fetcher(100_000, false, &read),
            |r| r,
            &|_| true,
        )
        .unwrap();
        assert_eq!(p.items, vec![99_001, 99_002, 99_003]);
        assert_eq!(read.get(), 4);
    }

    #[test]
    fn last_page_has_no_next() {
        let read = std::cell::Cell::new(0);
        let p = walk(
            Some(8),
            &req(Some(8), 3, false),
            fetcher(10, false, &read),
            |r| r,
            &|_| true,
        )
        .unwrap();
        assert_eq!(p.items, vec![9, 10]);
        assert!(!p.has_next && p.has_previous);
    }

    #[test]
    fn reverse_page_is_in_creation_order() {
        let read = std::cell::Cell::new(0);
        let p = walk(
            Some(5),
            &req(Some(5), 3, true),
            fetcher(10, true, &read),
            |r| r,
            &|_| true,
        )
        .unwrap();
        assert_eq!(p.items, vec![2, 3, 4]);
        assert!(p.has_next && p.has_previous);
        let p = walk(
            Some(3),
            &req(Some(3), 3, true),
            fetcher(10, true, &read),
            |r| r,
            &|_| true,
        )
        .unwrap();
        assert_eq!(p.items, vec![1, 2]);
        assert!(p.has_next && !p.has_previous);
        let p = walk(
            None,
            &req(None, 3, true),
            fetcher(10, true, &read),
            |r| r,
            &|_| true,
        )
        .unwrap();
        assert_eq!(p.items, vec![8, 9, 10]);
        assert!(!p.has_next && p.has_previous);
    }

    #[test]
    fn filters_apply_before_paging() {
        let read = std::cell::Cell::new(0);
        let even = |v: &i64| v % 2 == 0;
        let p = walk(
            None,
            &req(None, 3, false),
            fetcher(20, false, &read),
            |r| r,
            &even,
        )
        .unwrap();
        assert_eq!(p.items, vec![2, 4, 6]);
        assert!(p.has_next);
        let p = walk(
            Some(14),
            &req(Some(14), 3, false),
            fetcher(20, false, &read),
            |r| r,
            &even,
        )
        .unwrap();
        assert_eq!(p.items, vec![16, 18, 20]);
        assert!(!p.has_next);
    }
}
