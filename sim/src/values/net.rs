//! Addresses and CIDR blocks.

pub use ipnet::IpNet as Cidr;

/// Parse `10.0.0.0/8` or `2001:db8::/32`. Host bits are allowed and cleared, as the
/// Kubernetes API server accepts them (Go's `net.ParseCIDR`). A bare address is refused:
/// NetworkPolicy's `cidr` must carry a prefix length.
pub fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let text = text.trim();
    if !text.contains('/') {
        return Err(format!(
            "`{text}` is not a CIDR: expected an address and a prefix length, such as 10.0.0.0/8"
        ));
    }
    text.parse::<Cidr>().map(|c| c.trunc()).map_err(|_| {
        format!("`{text}` is not a valid CIDR: expected such as 10.0.0.0/8 or 2001:db8::/32")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("10.0.0.1").is_err());
        assert!(parse_cidr("fd00::/8").is_ok());
        assert!(parse_cidr("banana/8").is_err());
    }
}
