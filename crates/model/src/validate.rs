use ipnet::{Ipv4Net, Ipv6Net};

use crate::ValidationError;

/// Longest accepted resource name, as for a DNS label.
pub const NAME_MAX: usize = 63;
/// Longest interface name the kernel accepts (IFNAMSIZ minus the terminating NUL).
pub const IFNAMSIZ_MAX: usize = 15;
/// Smallest VNI cloison hands out.
pub const VNI_MIN: u32 = 1;
/// Largest VNI: VXLAN carries 24 bits.
pub const VNI_MAX: u32 = (1 << 24) - 1;

/// Checks a tenant, network, endpoint or host name: 1-63 characters of `[a-z0-9-]`,
/// starting with a letter or digit.
pub fn validate_name(kind: &'static str, name: &str) -> Result<(), ValidationError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::Name {
            kind,
            name: name.to_string(),
        })
    }
}

/// Checks an interface name requested for the inside of a container.
pub fn validate_ifname(name: &str) -> Result<(), ValidationError> {
    let ok = !name.is_empty()
        && name.len() <= IFNAMSIZ_MAX
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(ValidationError::Ifname {
            name: name.to_string(),
        })
    }
}

/// IPv4 ranges an overlay subnet must not overlap, with what each is for. Link-local
/// 169.254.0.0/16 also carries cloison's transit links between host and router.
const RESERVED4: [(&str, &str); 5] = [
    ("0.0.0.0/8", "\"this network\""),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved and broadcast"),
];

/// IPv6 ranges an overlay subnet must not overlap, with what each is for. An AF_INET6
/// socket sends to an IPv4-mapped address (`::ffff:a.b.c.d`) as IPv4, not as IPv6.
const RESERVED6: [(&str, &str); 5] = [
    ("::/96", "unspecified and IPv4-compatible"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
];

/// Checks an IPv4 subnet: prefix /8 to /30, no host bits set, no overlap with [`RESERVED4`].
pub fn validate_subnet4(subnet: &Ipv4Net) -> Result<(), ValidationError> {
    if !(8..=30).contains(&subnet.prefix_len()) {
        return Err(ValidationError::Subnet4Prefix {
            subnet: subnet.to_string(),
        });
    }
    if subnet.trunc() != *subnet {
        return Err(ValidationError::SubnetHostBits {
            subnet: subnet.to_string(),
            network: subnet.trunc().to_string(),
        });
    }
    for (range, purpose) in RESERVED4 {
        let reserved: Ipv4Net = range.parse().expect("reserved range literal");
        if reserved.contains(subnet) || subnet.contains(&reserved) {
            return Err(ValidationError::SubnetReserved {
                subnet: subnet.to_string(),
                range,
                purpose,
            });
        }
    }
    Ok(())
}

/// Checks an IPv6 subnet: prefix /64 to /120, no host bits set, no overlap with [`RESERVED6`].
pub fn validate_subnet6(subnet: &Ipv6Net) -> Result<(), ValidationError> {
    if !(64..=120).contains(&subnet.prefix_len()) {
        return Err(ValidationError::Subnet6Prefix {
            subnet: subnet.to_string(),
        });
    }
    if subnet.trunc() != *subnet {
        return Err(ValidationError::SubnetHostBits {
            subnet: subnet.to_string(),
            network: subnet.trunc().to_string(),
        });
    }
    for (range, purpose) in RESERVED6 {
        let reserved: Ipv6Net = range.parse().expect("reserved range literal");
        if reserved.contains(subnet) || subnet.contains(&reserved) {
            return Err(ValidationError::SubnetReserved {
                subnet: subnet.to_string(),
                range,
                purpose,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_dns_labels() {
        for good in ["a", "web", "0tenant", "a-b-c", &"x".repeat(63)] {
            assert!(validate_name("network", good).is_ok(), "{good} rejected");
        }
    }

    #[test]
    fn names_reject_with_accepted_form() {
        for bad in ["", "-web", "Web", "web_1", "web.1", "wéb", &"x".repeat(64)] {
            let err = validate_name("network", bad).expect_err(bad);
            let text = err.to_string();
            assert!(text.contains("1-63 characters of a-z, 0-9 and '-'"), "{text}");
            assert!(text.contains("network name"), "{text}");
        }
    }

    #[test]
    fn ifname_limit_is_fifteen_bytes() {
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname(&"e".repeat(15)).is_ok());
        let err = validate_ifname(&"e".repeat(16)).expect_err("16 bytes");
        assert!(err.to_string().contains("1-15 bytes"));
        assert!(validate_ifname("a/b").is_err());
        assert!(validate_ifname("a b").is_err());
    }

    #[test]
    fn subnet4_prefix_bounds() {
        assert!(validate_subnet4(&"10.0.0.0/8".parse().expect("net")).is_ok());
        assert!(validate_subnet4(&"10.0.0.0/30".parse().expect("net")).is_ok());
        let err = validate_subnet4(&"10.0.0.0/31".parse().expect("net")).expect_err("/31");
        assert!(err.to_string().contains("/8 and /30"));
        assert!(validate_subnet4(&"10.0.0.0/7".parse().expect("net")).is_err());
    }

    #[test]
    fn subnet4_rejects_reserved_ranges() {
        let cases = [
            ("127.0.0.0/24", "127.0.0.0/8"),
            ("224.0.0.0/24", "224.0.0.0/4"),
            ("255.255.255.0/24", "240.0.0.0/4"),
            ("0.0.0.0/8", "0.0.0.0/8"),
            ("169.254.10.0/24", "169.254.0.0/16"),
            ("169.0.0.0/8", "169.254.0.0/16"),
        ];
        for (subnet, range) in cases {
            let err = validate_subnet4(&subnet.parse().expect("net")).expect_err(subnet);
            let text = err.to_string();
            assert!(text.contains(range), "{subnet}: {text}");
            assert!(text.contains("10.0.0.0/8"), "{subnet}: {text}");
        }
        assert!(validate_subnet4(&"10.200.0.0/24".parse().expect("net")).is_ok());
        assert!(validate_subnet4(&"223.255.255.0/24".parse().expect("net")).is_ok());
    }

    #[test]
    fn subnet6_rejects_reserved_ranges() {
        let cases = [
            ("::/120", "::/96"),
            ("::ffff:10.0.0.0/120", "::ffff:0:0/96"),
            ("fe80::/64", "fe80::/10"),
            ("ff02::/64", "ff00::/8"),
        ];
        for (subnet, range) in cases {
            let err = validate_subnet6(&subnet.parse().expect("net")).expect_err(subnet);
            let text = err.to_string();
            assert!(text.contains(range), "{subnet}: {text}");
            assert!(text.contains("fd00::/8"), "{subnet}: {text}");
        }
        assert!(validate_subnet6(&"fd00:200::/64".parse().expect("net")).is_ok());
    }

    #[test]
    fn subnet4_host_bits_suggest_network() {
        let err = validate_subnet4(&"10.10.0.5/24".parse().expect("net")).expect_err("host bits");
        assert!(err.to_string().contains("10.10.0.0/24"), "{err}");
    }

    #[test]
    fn subnet6_prefix_bounds() {
        assert!(validate_subnet6(&"fd00::/64".parse().expect("net")).is_ok());
        assert!(validate_subnet6(&"fd00::/120".parse().expect("net")).is_ok());
        assert!(validate_subnet6(&"fd00::/63".parse().expect("net")).is_err());
        assert!(validate_subnet6(&"fd00::/121".parse().expect("net")).is_err());
    }
}
