//! Query filters on the four list calls (spec section 3).
//!
//! Keys are matched exactly; a repeated key keeps its last value (as
//! `dict.update(request.GET)` did). Unknown keys:
//! - v1.1 answers 400 naming the key and the valid ones: the original's
//!   "empty list" behaviour silently hides typos from clients.
//! - v1.0 keeps the original behaviour: unknown keys are ignored, and a
//!   query string with no known key at all matches nothing.

use control::filter::parse_has_attachment;
use control::{NetworkFilter, PortFilter};

use crate::fault::ApiError;
use crate::negotiate::Version;

const NETWORK_KEYS: &[&str] = &[
    "name",
    "op-status",
    "port-op-status",
    "port-state",
    "has-attachment",
    "attachment",
    "port",
];
const PORT_KEYS: &[&str] = &["state", "op-status", "has-attachment", "attachment"];

/// A parsed filter; `MatchNothing` is v1.0's answer to a query with no known
/// key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed<F> {
    Filter(F),
    MatchNothing,
}

/// The query's pairs, last value winning, in first-seen key order.
fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match out.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v.into_owned(),
            None => out.push((k.into_owned(), v.into_owned())),
        }
    }
    out
}

fn check<F>(
    v: Version,
    what: &str,
    known: &[&str],
    pairs: &[(String, String)],
    filter: F,
) -> Result<Parsed<F>, ApiError> {
    // v1.1's paging keys are not filters.
    let paging = |k: &str| v == Version::V11 && crate::page::KEYS.contains(&k);
    let unknown: Vec<&str> = pairs
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !known.contains(k) && !paging(k))
        .collect();
    match v {
        Version::V11 => {
            if let Some(k) = unknown.first() {
                return Err(ApiError::BadRequest(format!(
                    "Unknown filter '{k}' on {what}; valid filters are: {}",
                    known.join(", ")
                )));
            }
            Ok(Parsed::Filter(filter))
        }
        Version::V10 => {
            if !pairs.is_empty() && unknown.len() == pairs.len() {
                Ok(Parsed::MatchNothing)
            } else {
                Ok(Parsed::Filter(filter))
            }
        }
    }
}

/// Parses a network list's query.
pub(crate) fn networks(v: Version, query: Option<&str>) -> Result<Parsed<NetworkFilter>, ApiError> {
    let pairs = pairs(query);
    let mut f = NetworkFilter::default();
    for (k, val) in &pairs {
        let val = Some(val.clone());
        match k.as_str() {
            "name" => f.name = val,
            "op-status" => f.op_status = val,
            "port-op-status" => f.port_op_status = val,
            "port-state" => f.port_state = val,
            "has-attachment" => f.has_attachment = val.as_deref().map(parse_has_attachment),
            "attachment" => f.attachment = val,
            "port" => f.port = val,
            _ => {}
        }
    }
    check(v, "networks", NETWORK_KEYS, &pairs, f)
}

/// Parses a port list's query.
pub(crate) fn ports(v: Version, query: Option<&str>) -> Result<Parsed<PortFilter>, ApiError> {
    let pairs = pairs(query);
    let mut f = PortFilter::default();
    for (k, val) in &pairs {
        let val = Some(val.clone());
        match k.as_str() {
            "state" => f.state = val,
            "op-status" => f.op_status = val,
            "has-attachment" => f.has_attachment = val.as_deref().map(parse_has_attachment),
            "attachment" => f.attachment = val,
            _ => {}
        }
    }
    check(v, "ports", PORT_KEYS, &pairs, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_key_keeps_the_last_value() {
        let Ok(Parsed::Filter(f)) = networks(Version::V11, Some("name=a&name=b")) else {
            panic!()
        };
        assert_eq!(f.name.as_deref(), Some("b"));
    }

    #[test]
    fn unknown_keys_are_400_in_v11_and_match_nothing_alone_in_v10() {
        assert!(matches!(
            networks(Version::V11, Some("foo=bar")),
            Err(ApiError::BadRequest(_))
        ));
        assert_eq!(
            ports(Version::V10, Some("foo=bar")).unwrap(),
            Parsed::MatchNothing
        );
        let Ok(Parsed::Filter(f)) = ports(Version::V10, Some("foo=bar&state=DOWN")) else {
            panic!()
        };
        assert_eq!(f.state.as_deref(), Some("DOWN"));
        assert_eq!(
            ports(Version::V10, None).unwrap(),
            Parsed::Filter(PortFilter::default())
        );
    }

    #[test]
    fn values_are_percent_decoded() {
        let Ok(Parsed::Filter(f)) =
            networks(Version::V11, Some("name=my%20net&has-attachment=True"))
        else {
            panic!()
        };
        assert_eq!(f.name.as_deref(), Some("my net"));
        assert_eq!(f.has_attachment, Some(true));
    }
}
