//! Port MAC addresses: validation of client-given ones and the choice of
//! new ones in OpenStack's `fa:16:3e` prefix, unique per network.

/// The prefix of every MAC the server makes (OpenStack's `base_mac`).
pub const BASE_MAC: [u8; 3] = [0xfa, 0x16, 0x3e];

/// How many random MACs are tried before giving up (each try collides with
/// probability ports-on-network / 2^24).
pub const MAC_TRIES: usize = 16;

/// A client-given unicast MAC address, parsed once where it enters (the API's edge); shown in
/// the lowercase colon form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac([u8; 6]);

impl Mac {
    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-`), any case. The all-zero, broadcast and
    /// multicast addresses are refused.
    pub fn parse(s: &str) -> Option<Mac> {
        let sep = if s.contains(':') { ':' } else { '-' };
        let mut bytes = [0u8; 6];
        let mut parts = s.split(sep);
        for b in &mut bytes {
            let p = parts.next()?;
            if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            *b = u8::from_str_radix(p, 16).ok()?;
        }
        if parts.next().is_some() || bytes == [0; 6] || bytes[0] & 1 == 1 {
            return None;
        }
        Some(Mac(bytes))
    }

    /// Its six bytes.
    pub fn octets(self) -> [u8; 6] {
        self.0
    }
}

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format(self.0))
    }
}

/// The colon form of six bytes.
pub fn format(b: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5]
    )
}

/// A random MAC in the base prefix.
pub fn random() -> String {
    let r = uuid::Uuid::new_v4();
    let r = r.as_bytes();
    format([BASE_MAC[0], BASE_MAC[1], BASE_MAC[2], r[0], r[1], r[2]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_macs_are_normalised_and_unicast() {
        assert_eq!(
            Mac::parse("FA-16-3E-00-00-01")
                .map(|m| m.to_string())
                .as_deref(),
            Some("fa:16:3e:00:00:01")
        );
        for bad in [
            "zz",
            "00:00:00:00:00:00",
            "ff:ff:ff:ff:ff:ff",
            "01:00:5e:00:00:01",
            "fa:16:3e:0:0:1",
            "fa:16:3e:00:00:01:02",
            "fa:16:3e:00:00",
            "fa:16-3e:00:00:01",
            "+a:16:3e:00:00:01",
        ] {
            assert!(Mac::parse(bad).is_none(), "{bad}");
        }
        assert!(random().starts_with("fa:16:3e:"));
    }
}
