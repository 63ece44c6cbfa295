//! List queries of v2.0: `fields=`, filters, sorting and pagination with
//! `*_links` (spec section 3.4, `neutron/api/api_common.py`).
//!
//! # Design
//!
//! Lists are answered from the whole visible collection in memory: filter,
//! sort (the sort keys, then creation order), page, then project onto
//! `fields`. Filters are any attribute (repeated values OR, keys AND), with
//! values converted as the attribute's type (booleans as Neutron's
//! `convert_to_boolean`). Paging follows the marker (an id) in the sorted
//! order; `page_reverse` pages backwards from it. An unknown marker gives an
//! empty page, as Neutron's emulated pagination does.

use std::cmp::Ordering;

use control::store::{NetworkKey, NetworkQuery, PortKey, PortQuery, SubnetKey, SubnetQuery};
use serde_json::{json, Map, Value};

use super::attrs::{self, str_to_bool};
use super::error::NeutronError;
use super::Kind;

type R<T> = Result<T, NeutronError>;

/// A parsed list query.
#[derive(Debug, Default, Clone)]
pub(crate) struct ListQuery {
    /// The raw pairs, in order (for the links).
    raw: Vec<(String, String)>,
    fields: Vec<String>,
    filters: Vec<(String, Vec<String>)>,
    sort: Vec<(String, bool)>,
    limit: usize,
    marker: Option<String>,
    page_reverse: bool,
}

/// Parses the query string of a list (or the `fields` of a show).
pub(crate) fn parse(kind: Kind, query: Option<&str>) -> R<ListQuery> {
    let raw: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut q = ListQuery::default();
    let mut sort_keys = Vec::new();
    let mut sort_dirs = Vec::new();
    for (k, v) in &raw {
        match k.as_str() {
            "fields" => q.fields.push(v.clone()),
            "limit" => {
                q.limit = v.parse::<usize>().map_err(|_| {
                    NeutronError::bad_request_class(format!(
                        "Bad limit request: Limit must be an integer 0 or greater and not '{v}'."
                    ))
                })?;
            }
            "marker" => q.marker = Some(v.clone()),
            "page_reverse" => q.page_reverse = str_to_bool(v)?,
            "sort_key" => sort_keys.push(v.clone()),
            "sort_dir" => sort_dirs.push(v.clone()),
            _ => match q.filters.iter_mut().find(|(name, _)| name == k) {
                Some((_, values)) => values.push(v.clone()),
                None => q.filters.push((k.clone(), vec![v.clone()])),
            },
        }
    }
    let bad: Vec<String> = q
        .filters
        .iter()
        .map(|(k, _)| k)
        .filter(|k| !attrs::known(kind, k))
        .map(|k| format!("'{k}'"))
        .collect();
    if !bad.is_empty() {
        return Err(NeutronError::bad_request(format!(
            "[{}] is invalid attribute for filtering",
            bad.join(", ")
        )));
    }
    if !sort_keys.is_empty() || !sort_dirs.is_empty() {
        if sort_keys.len() != sort_dirs.len() {
            return Err(NeutronError::bad_request(
                "The number of sort_keys and sort_dirs must be same",
            ));
        }
        let bad: Vec<String> = sort_keys
            .iter()
            .filter(|k| !sortable(kind, k))
            .map(|k| format!("'{k}'"))
            .collect();
        if !bad.is_empty() {
            return Err(NeutronError::bad_request(format!(
                "[{}] is invalid attribute for sort_keys",
                bad.join(", ")
            )));
        }
        let bad: Vec<String> = sort_dirs
            .iter()
            .filter(|d| *d != "asc" && *d != "desc")
            .map(|d| format!("'{d}'"))
            .collect();
        if !bad.is_empty() {
            return Err(NeutronError::bad_request(format!(
                "[{}] is invalid value for sort_dirs, valid value is 'asc' and 'desc'",
                bad.join(", ")
            )));
        }
        q.sort = sort_keys
            .into_iter()
            .zip(sort_dirs)
            .map(|(k, d)| (k, d == "asc"))
            .collect();
    }
    q.raw = raw;
    Ok(q)
}

/// The store-side form of a port list, when it has one: no sort keys and every filter on an
/// attribute the store indexes. Returns the store query (filters and marker) and what is left to
/// [`answer`] (limit, direction, fields and links over the page the store returns).
pub(crate) fn port_pushdown(q: &ListQuery) -> R<Option<(PortQuery, ListQuery)>> {
    if !q.sort.is_empty() {
        return Ok(None);
    }
    let mut filters = Vec::with_capacity(q.filters.len());
    for (name, values) in &q.filters {
        let key = match name.as_str() {
            "id" => PortKey::Id,
            "network_id" => PortKey::NetworkId,
            "tenant_id" | "project_id" => PortKey::Tenant,
            "device_id" => PortKey::DeviceId,
            "device_owner" => PortKey::DeviceOwner,
            "mac_address" => PortKey::MacAddress,
            "name" => PortKey::Name,
            "description" => PortKey::Description,
            "binding:host_id" => PortKey::HostId,
            "admin_state_up" => {
                let mut v = Vec::with_capacity(values.len());
                for x in values {
                    v.push(str_to_bool(x)?.to_string());
                }
                filters.push((PortKey::AdminStateUp, v));
                continue;
            }
            "fixed_ips" => {
                let mut ips = Vec::new();
                let mut subnets = Vec::new();
                for v in values {
                    match v.split_once('=') {
                        Some(("ip_address", ip)) => ips.push(ip.to_owned()),
                        Some(("subnet_id", id)) => subnets.push(id.to_owned()),
                        _ => return Ok(None),
                    }
                }
                if !ips.is_empty() {
                    filters.push((PortKey::FixedIpAddress, ips));
                }
                if !subnets.is_empty() {
                    filters.push((PortKey::FixedIpSubnet, subnets));
                }
                continue;
            }
            _ => return Ok(None),
        };
        filters.push((key, values.clone()));
    }
    let store = PortQuery {
        tenant: None,
        filters,
        marker: q.marker.clone(),
        reverse: q.page_reverse,
        limit: q.limit,
    };
    Ok(Some((store, after_store(q))))
}

/// What is left to [`answer`] once the store filtered and paged: limit, direction, fields and
/// links over the page it returns.
fn after_store(q: &ListQuery) -> ListQuery {
    ListQuery {
        filters: Vec::new(),
        marker: None,
        ..q.clone()
    }
}

/// The store-side form of a network or subnet list, when it has one: no sort keys and every
/// filter on an attribute `key` maps to a stored column (`true` for a boolean one).
fn list_pushdown<K>(
    q: &ListQuery,
    key: fn(&str) -> Option<(K, bool)>,
) -> R<Option<(control::store::ListQuery<K>, ListQuery)>> {
    if !q.sort.is_empty() {
        return Ok(None);
    }
    let mut filters = Vec::with_capacity(q.filters.len());
    for (name, values) in &q.filters {
        let Some((k, boolean)) = key(name) else {
            return Ok(None);
        };
        let values = if boolean {
            let mut v = Vec::with_capacity(values.len());
            for x in values {
                v.push(str_to_bool(x)?.to_string());
            }
            v
        } else {
            values.clone()
        };
        filters.push((k, values));
    }
    let store = control::store::ListQuery {
        visible_to: None,
        filters,
        marker: q.marker.clone(),
        reverse: q.page_reverse,
        limit: q.limit,
    };
    Ok(Some((store, after_store(q))))
}

/// A network list in the store, unless it filters on what the store does not hold (`status`,
/// `subnets`, `mtu`, ...).
pub(crate) fn network_pushdown(q: &ListQuery) -> R<Option<(NetworkQuery, ListQuery)>> {
    list_pushdown(q, |name| {
        Some(match name {
            "id" => (NetworkKey::Id, false),
            "name" => (NetworkKey::Name, false),
            "tenant_id" | "project_id" => (NetworkKey::Tenant, false),
            "description" => (NetworkKey::Description, false),
            "admin_state_up" => (NetworkKey::AdminStateUp, true),
            "shared" => (NetworkKey::Shared, true),
            _ => return None,
        })
    })
}

/// A subnet list in the store, unless it filters on what the store does not hold as a column
/// (`enable_dhcp`, pools, routes, ...).
pub(crate) fn subnet_pushdown(q: &ListQuery) -> R<Option<(SubnetQuery, ListQuery)>> {
    list_pushdown(q, |name| {
        Some(match name {
            "id" => (SubnetKey::Id, false),
            "network_id" => (SubnetKey::NetworkId, false),
            "name" => (SubnetKey::Name, false),
            "tenant_id" | "project_id" => (SubnetKey::Tenant, false),
            "description" => (SubnetKey::Description, false),
            "cidr" => (SubnetKey::Cidr, false),
            "ip_version" => (SubnetKey::IpVersion, false),
            "gateway_ip" => (SubnetKey::GatewayIp, false),
            _ => return None,
        })
    })
}

/// Attributes that are lists or objects cannot be sort keys.
fn sortable(kind: Kind, key: &str) -> bool {
    attrs::known(kind, key)
        && !matches!(
            key,
            "subnets"
                | "fixed_ips"
                | "allowed_address_pairs"
                | "security_groups"
                | "extra_dhcp_opts"
                | "binding:profile"
                | "binding:vif_details"
                | "allocation_pools"
                | "host_routes"
                | "dns_nameservers"
                | "availability_zone_hints"
                | "availability_zones"
                | "service_types"
                | "tags"
        )
}

/// Does one attribute value match one filter value?
pub(crate) fn matches_one(value: Option<&Value>, want: &str) -> R<bool> {
    Ok(match value {
        None => false,
        Some(Value::Null) => want.is_empty() || want == "None",
        Some(Value::Bool(b)) => *b == str_to_bool(want)?,
        Some(Value::String(s)) => s == want,
        Some(Value::Number(n)) => n.to_string() == want,
        Some(Value::Array(items)) => {
            // `fixed_ips=ip_address=X` / `fixed_ips=subnet_id=Y`; other
            // lists match an element.
            match want.split_once('=') {
                Some((k, v)) => items
                    .iter()
                    .any(|i| i.get(k).and_then(Value::as_str) == Some(v)),
                None => items.iter().any(|i| i.as_str() == Some(want)),
            }
        }
        Some(Value::Object(_)) => false,
    })
}

fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

/// Keeps only the keys asked for with `fields=` (all when none).
pub(crate) fn project(q: &ListQuery, item: Map<String, Value>) -> Map<String, Value> {
    if q.fields.is_empty() {
        return item;
    }
    item.into_iter()
        .filter(|(k, _)| q.fields.iter().any(|f| f == k))
        .collect()
}

/// Only the `fields` of a show request; other parameters are ignored, as
/// Neutron ignores them.
pub(crate) fn fields_only(query: Option<&str>) -> ListQuery {
    ListQuery {
        fields: form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .filter(|(k, _)| k == "fields")
            .map(|(_, v)| v.into_owned())
            .collect(),
        ..ListQuery::default()
    }
}

/// Filters, sorts and pages `items` (in creation order) and builds the
/// collection body with its links. `base` is the absolute URL of the
/// collection (`http://host/v2.0/networks`).
pub(crate) fn answer(
    q: &ListQuery,
    collection: &str,
    base: &str,
    items: Vec<Map<String, Value>>,
) -> R<Value> {
    let mut kept = Vec::with_capacity(items.len());
    for item in items {
        let mut ok = true;
        for (k, values) in &q.filters {
            let mut any = false;
            for v in values {
                if matches_one(item.get(k), v)? {
                    any = true;
                    break;
                }
            }
            if !any {
                ok = false;
                break;
            }
        }
        if ok {
            kept.push(item);
        }
    }
    if !q.sort.is_empty() {
        // Stable: creation order breaks ties.
        kept.sort_by(|a, b| {
            for (k, asc) in &q.sort {
                let o = compare(
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                );
                let o = if *asc { o } else { o.reverse() };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
    }
    let id_of = |m: &Map<String, Value>| m.get("id").and_then(Value::as_str).map(str::to_owned);
    let mut page = if q.page_reverse {
        kept.into_iter().rev().collect::<Vec<_>>()
    } else {
        kept
    };
    if let Some(marker) = &q.marker {
        page = match page
            .iter()
            .position(|m| id_of(m).as_deref() == Some(marker))
        {
            Some(i) => page.split_off(i + 1),
            None => Vec::new(),
        };
    }
    if q.limit > 0 {
        page.truncate(q.limit);
    }
    if q.page_reverse {
        page.reverse();
    }
    let links = if q.limit > 0 {
        links(q, base, &page)
    } else {
        Vec::new()
    };
    let body: Vec<Value> = page
        .into_iter()
        .map(|m| Value::Object(project(q, m)))
        .collect();
    let mut out = Map::new();
    out.insert(collection.to_owned(), Value::Array(body));
    if !links.is_empty() {
        out.insert(format!("{collection}_links"), Value::Array(links));
    }
    Ok(Value::Object(out))
}

/// Neutron's `get_pagination_links`: `next` unless a short page going
/// forward, `previous` unless a short page going backward; the hrefs keep
/// the query without `marker`/`page_reverse` and add their own.
fn links(q: &ListQuery, base: &str, page: &[Map<String, Value>]) -> Vec<Value> {
    let short = page.len() < q.limit;
    let keep: Vec<&(String, String)> = q
        .raw
        .iter()
        .filter(|(k, _)| k != "marker" && k != "page_reverse")
        .collect();
    let href = |marker: Option<&str>, reverse: bool| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &keep {
            s.append_pair(k, v);
        }
        if let Some(m) = marker {
            s.append_pair("marker", m);
        }
        if reverse {
            s.append_pair("page_reverse", "True");
        }
        format!("{base}?{}", s.finish())
    };
    fn id(m: Option<&Map<String, Value>>) -> Option<&str> {
        m.and_then(|m| m.get("id")).and_then(Value::as_str)
    }
    let mut out = Vec::new();
    if !short || q.page_reverse {
        out.push(json!({"rel": "next", "href": href(id(page.last()), false)}));
    }
    if !short || !q.page_reverse {
        out.push(json!({"rel": "previous", "href": href(id(page.first()), true)}));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_lists_go_to_the_store_only_when_it_answers_every_filter() {
        let q = parse(Kind::Network, Some("name=a&shared=True&limit=2&marker=m")).unwrap();
        let (store, rest) = network_pushdown(&q).unwrap().expect("pushed down");
        assert_eq!(
            store.filters,
            vec![
                (NetworkKey::Name, vec!["a".to_owned()]),
                (NetworkKey::Shared, vec!["true".to_owned()]),
            ]
        );
        assert_eq!((store.marker.as_deref(), store.limit), (Some("m"), 2));
        assert!(rest.filters.is_empty() && rest.marker.is_none());
        for kept in [
            "mtu=1500",
            "status=ACTIVE",
            "subnets=x",
            "sort_key=name&sort_dir=asc",
        ] {
            let q = parse(Kind::Network, Some(kept)).unwrap();
            assert!(network_pushdown(&q).unwrap().is_none(), "{kept}");
        }
        let q = parse(Kind::Network, Some("shared=maybe")).unwrap();
        assert!(network_pushdown(&q).is_err());
        let q = parse(Kind::Subnet, Some("ip_version=4&cidr=198.18.0.0/24")).unwrap();
        assert!(subnet_pushdown(&q).unwrap().is_some());
        let q = parse(Kind::Subnet, Some("enable_dhcp=true")).unwrap();
        assert!(subnet_pushdown(&q).unwrap().is_none());
    }
}
