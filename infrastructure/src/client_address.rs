//! The client's address behind the proxies a deployment trusts, for both
//! APIs: the event metadata and the rate limits key on it.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// The peer's address; or, when the peer is a trusted proxy, the nearest
/// address `X-Forwarded-For` names that is not a trusted proxy itself (the
/// rightmost untrusted entry, since a client can write anything to the
/// left of what the proxies append).
pub fn client_address(headers: &HeaderMap, peer: IpAddr, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
        .collect();
    forwarded
        .iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .or(forwarded.first())
        .copied()
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(
            client_address(
                &forwarded("203.0.113.9"),
                ip("198.51.100.1"),
                &[ip("10.0.0.1")]
            ),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_entry_is_the_client() {
        let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
        let headers = forwarded("1.2.3.4, 203.0.113.9, 10.0.0.2");
        assert_eq!(
            client_address(&headers, ip("10.0.0.1"), &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_address(&forwarded("10.0.0.2"), ip("10.0.0.1"), &trusted),
            ip("10.0.0.2"),
            "only proxies: the first of them"
        );
        assert_eq!(
            client_address(&HeaderMap::new(), ip("10.0.0.1"), &trusted),
            ip("10.0.0.1")
        );
    }
}
