//! The paging parameters of the v1.1 lists: `limit`, `marker` and
//! `page_reverse` (spec section 8; the paging itself is
//! [`control::page`]).
//!
//! - `limit`: an integer of at least 1, capped at the server's maximum page
//!   size, which also applies when no limit is given.
//! - `marker`: the id of the last item of the previous page (the first, when
//!   walking backwards); an id that is not in the list is 400.
//! - `page_reverse`: `true` walks backwards from the marker (or from the
//!   end of the list); items stay in creation order.
//!
//! A repeated key keeps its last value, as the filters do. v1.0 knows none
//! of these keys: they stay v1.0 filter keys (ignored).

use control::{Page, PageRequest};
use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::fault::ApiError;
use crate::links;

/// The query keys that are paging, not filters.
pub(crate) const KEYS: &[&str] = &["limit", "marker", "page_reverse"];

/// The default server maximum page size.
pub const DEFAULT_MAX_PAGE_SIZE: usize = 1000;

/// Reads the paging keys of a v1.1 list query.
pub(crate) fn request(query: Option<&str>, max: usize) -> Result<PageRequest, ApiError> {
    let max = max.max(1);
    let mut req = PageRequest {
        marker: None,
        limit: max,
        reverse: false,
    };
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "limit" => {
                req.limit = match v.trim().parse::<u64>() {
                    Ok(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX).min(max),
                    _ => {
                        return Err(ApiError::BadRequest(format!(
                            "Invalid limit '{v}': a page size is an integer of at least 1"
                        )))
                    }
                }
            }
            "marker" => {
                if v.is_empty() {
                    return Err(ApiError::BadRequest(
                        "Invalid marker '': a marker is the id of an item of the list".into(),
                    ));
                }
                req.marker = Some(v.into_owned());
            }
            "page_reverse" => {
                req.reverse = match v.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ApiError::BadRequest(format!(
                            "Invalid page_reverse '{v}': expected True or False"
                        )))
                    }
                }
            }
            _ => {}
        }
    }
    Ok(req)
}

/// The v1.1 body of one page of `key` (`networks` or `ports`): its items, and `<key>_links` with
/// `next`/`previous` built from the request's own URL.
pub(crate) fn body<T>(
    ctx: &Ctx,
    key: &str,
    page: &Page<T>,
    limit: usize,
    id: impl Fn(&T) -> &str,
    item: impl Fn(&T) -> Value,
) -> Value {
    let items: Vec<Value> = page.items.iter().map(item).collect();
    let page_links = links::page_links(
        &ctx.origin,
        &ctx.path,
        ctx.query.as_deref(),
        limit,
        page.items.last().map(&id).filter(|_| page.has_next),
        page.items.first().map(&id).filter(|_| page.has_previous),
    );
    json!({ key: items, format!("{key}_links"): page_links })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_positive_integers_capped_at_the_maximum() {
        assert_eq!(request(None, 50).unwrap().limit, 50);
        assert_eq!(request(Some("limit=7"), 50).unwrap().limit, 7);
        assert_eq!(request(Some("limit=700"), 50).unwrap().limit, 50);
        assert_eq!(request(Some("limit=99999999999999999999"), 50).ok(), None);
        for bad in [
            "limit=0",
            "limit=-1",
            "limit=abc",
            "limit=",
            "limit=1.5",
            "marker=",
            "page_reverse=maybe",
        ] {
            assert!(request(Some(bad), 50).is_err(), "{bad}");
        }
        let r = request(Some("marker=m&page_reverse=TRUE&limit=3&limit=4"), 50).unwrap();
        assert_eq!(
            r,
            PageRequest {
                marker: Some("m".into()),
                limit: 4,
                reverse: true
            }
        );
    }
}
