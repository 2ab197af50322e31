//! IPv4 networks in CIDR form, as `--network` and `fleet.local.network` take them.

// `core::net`: the address type alone, no sockets.
use core::net::Ipv4Addr;

/// Parses `a.b.c.d/n` with a prefix between 8 and 30; the error says what is wrong.
pub fn parse_cidr(cidr: &str) -> Result<(Ipv4Addr, u8), String> {
    let (addr, prefix) = cidr
        .split_once('/')
        .ok_or_else(|| format!("`{cidr}`: expected an IPv4 CIDR like 127.0.10.0/24"))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("`{cidr}`: `{addr}` is not an IPv4 address"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| (8..=30).contains(p))
        .ok_or_else(|| format!("`{cidr}`: the prefix must be between 8 and 30"))?;
    Ok((addr, prefix))
}

/// Whether two networks share an address.
pub fn overlaps(a: (Ipv4Addr, u8), b: (Ipv4Addr, u8)) -> bool {
    let shorter = a.1.min(b.1);
    let mask = u32::MAX << (32 - shorter);
    u32::from(a.0) & mask == u32::from(b.0) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_overlap_when_one_holds_an_address_of_the_other() {
        let n = |s: &str| parse_cidr(s).unwrap();
        assert!(overlaps(n("127.0.87.0/24"), n("127.0.87.64/26")));
        assert!(!overlaps(n("127.0.87.0/26"), n("127.0.87.64/26")));
        assert!(!overlaps(n("127.0.87.0/24"), n("127.0.88.0/24")));
        assert!(
            parse_cidr("127.0.87.0")
                .unwrap_err()
                .contains("expected an IPv4 CIDR")
        );
        assert!(parse_cidr("127.0.87.0/31").unwrap_err().contains("prefix"));
    }
}
