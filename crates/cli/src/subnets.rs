//! Parsers of `--subnet` and `--subnet6` with errors that name the value and the accepted form.

use ipnet::{Ipv4Net, Ipv6Net};

/// Parses an IPv4 prefix such as `10.0.0.0/24`.
pub(crate) fn parse_subnet4(text: &str) -> Result<Ipv4Net, String> {
    text.parse().map_err(|_| {
        format!("invalid subnet {text:?}: expected an IPv4 prefix such as 10.0.0.0/24; use --subnet6 for IPv6")
    })
}

/// Parses an IPv6 prefix such as `fd00:10::/64`.
pub(crate) fn parse_subnet6(text: &str) -> Result<Ipv6Net, String> {
    text.parse().map_err(|_| {
        format!("invalid subnet {text:?}: expected an IPv6 prefix such as fd00:10::/64; use --subnet for IPv4")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet4_error_names_value_and_form() {
        let err = parse_subnet4("300.1.1.0/24").expect_err("octet above 255");
        assert_eq!(
            err,
            "invalid subnet \"300.1.1.0/24\": expected an IPv4 prefix such as 10.0.0.0/24; use --subnet6 for IPv6"
        );
        assert!(parse_subnet4("10.0.0.0").is_err(), "a prefix length is required");
        assert_eq!(parse_subnet4("10.0.0.0/24"), Ok("10.0.0.0/24".parse().expect("net")));
    }

    #[test]
    fn subnet6_error_names_value_and_form() {
        let err = parse_subnet6("10.0.0.0/24").expect_err("IPv4 prefix");
        assert!(err.contains("expected an IPv6 prefix"), "{err}");
        assert_eq!(parse_subnet6("fd00::/64"), Ok("fd00::/64".parse().expect("net")));
    }
}
