//! The rule for a URL this node sends a request to on somebody else's
//! behalf: a worker's `tunnel_url`, when a request is routed to it.
//!
//! Anyone can write a worker record (through any node, or as a stock Python
//! peer straight into the DHT), so the URL in it is untrusted input. A node
//! that forwarded to whatever it read could be made to reach the cloud
//! metadata service beside it (169.254.169.254, `fe80::/10`,
//! `metadata.google.internal`), to send credentials embedded in the URL, or
//! to send a request line smuggled through a control character. One pure
//! function, [`check_target_url`], decides; registration can call it too, so
//! what is refused there is never forwarded here either.
//!
//! Loopback and private addresses are allowed on purpose: workers on the
//! same machine or LAN are normal. Host names are checked by name here; the
//! addresses they resolve to are checked again with [`refused_ip`] by the
//! forwarding client's resolver.

use std::net::{IpAddr, Ipv6Addr};

use reqwest::Url;

/// Longest URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 512;

/// Host names of cloud metadata services (compared without a trailing dot).
const METADATA_HOSTS: [&str; 4] =
    ["metadata", "metadata.google.internal", "instance-data", "instance-data.ec2.internal"];

/// AWS's IPv6 metadata address (a unique-local address, so not caught by the
/// link-local rule).
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

/// Why a URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    /// Longer than [`MAX_URL_LEN`]; tunnel URLs are short.
    #[error("it is longer than {MAX_URL_LEN} bytes")]
    TooLong,
    /// A control character or white space, which URL parsers silently drop
    /// and which could split a request line; send the URL without it.
    #[error("it contains a control character or white space")]
    ControlCharacter,
    /// Not an absolute URL.
    #[error("it is not an absolute URL: {0}")]
    Malformed(String),
    /// Only `http` and `https` are forwarded to.
    #[error("the scheme must be http or https, not {0:?}")]
    Scheme(String),
    /// `user:password@` in the URL would be sent to the worker as
    /// credentials of this node; workers need none.
    #[error("it carries user info (user:password@)")]
    UserInfo,
    /// No host to send to.
    #[error("it has no host")]
    NoHost,
    /// A query or fragment cannot be followed by `/service/{type}`.
    #[error("it has a query or a fragment")]
    QueryOrFragment,
    /// Link-local (where cloud metadata services listen), unspecified,
    /// multicast or broadcast: never a worker.
    #[error("its address {0} is link-local, unspecified, multicast, broadcast or a metadata address")]
    Address(IpAddr),
    /// A cloud metadata service's host name.
    #[error("its host {0:?} is a cloud metadata service")]
    MetadataHost(String),
    /// The service name would change the path (`.` or `..`).
    #[error("service name {0:?} is a path segment of its own")]
    DotService(String),
}

/// Whether a request to `ip` is refused: link-local (169.254.0.0/16,
/// fe80::/10), unspecified, multicast, broadcast, the AWS IPv6 metadata
/// address, and IPv4-mapped forms of these.
pub fn refused_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => refused_ip(IpAddr::V4(v4)),
            None => {
                (v6.segments()[0] & 0xffc0) == 0xfe80
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6 == AWS_METADATA_V6
            }
        },
    }
}

/// Checks a URL to forward to and returns it parsed.
pub fn check_target_url(s: &str) -> Result<Url, UrlRefused> {
    if s.len() > MAX_URL_LEN {
        return Err(UrlRefused::TooLong);
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(UrlRefused::ControlCharacter);
    }
    let url = Url::parse(s).map_err(|e| UrlRefused::Malformed(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlRefused::Scheme(url.scheme().to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefused::UserInfo);
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(UrlRefused::QueryOrFragment);
    }
    let host = url.host_str().unwrap_or_default();
    let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>();
    let name = host.trim_end_matches('.');
    match ip {
        Ok(ip) if refused_ip(ip) => Err(UrlRefused::Address(ip)),
        Ok(_) => Ok(url),
        Err(_) if name.is_empty() => Err(UrlRefused::NoHost),
        Err(_) if METADATA_HOSTS.contains(&name) => Err(UrlRefused::MetadataHost(name.to_owned())),
        Err(_) => Ok(url),
    }
}

/// `{tunnel_url}/service/{service}`, after [`check_target_url`]; `service`
/// must already be a valid service name
/// ([`super::input::check_service`]).
pub fn service_url(tunnel_url: &str, service: &str) -> Result<Url, UrlRefused> {
    if service == "." || service == ".." {
        return Err(UrlRefused::DotService(service.to_owned()));
    }
    let mut url = check_target_url(tunnel_url)?;
    let path = format!("{}/service/{service}", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_tunnel_urls_pass() {
        for ok in [
            "https://w-1.trycloudflare.com",
            "http://127.0.0.1:8080",
            "http://10.0.0.7:9000/",
            "http://[::1]:8000",
            "https://example.net/prefix/",
            "http://my-worker.local.",
        ] {
            assert!(check_target_url(ok).is_ok(), "{ok}");
        }
    }

    /// Whether an error is the expected one.
    type Is = fn(&UrlRefused) -> bool;

    #[test]
    fn refused_urls_name_their_reason() {
        let long = format!("https://{}.net", "a".repeat(MAX_URL_LEN));
        let cases: [(&str, Is); 16] = [
            (&long, |e| *e == UrlRefused::TooLong),
            ("http://a\n.net", |e| *e == UrlRefused::ControlCharacter),
            ("http://a.net/\tx", |e| *e == UrlRefused::ControlCharacter),
            (" http://a.net", |e| *e == UrlRefused::ControlCharacter),
            ("not a url", |e| matches!(e, UrlRefused::ControlCharacter)),
            ("a.net/x", |e| matches!(e, UrlRefused::Malformed(_))),
            ("ftp://a.net", |e| matches!(e, UrlRefused::Scheme(s) if s == "ftp")),
            ("file:///etc/passwd", |e| matches!(e, UrlRefused::Scheme(_))),
            ("http://user:pw@a.net", |e| *e == UrlRefused::UserInfo),
            ("http://user@a.net", |e| *e == UrlRefused::UserInfo),
            ("http://a.net/?x=1", |e| *e == UrlRefused::QueryOrFragment),
            ("http://a.net/#top", |e| *e == UrlRefused::QueryOrFragment),
            ("http://169.254.169.254/latest", |e| matches!(e, UrlRefused::Address(_))),
            ("http://[fe80::1]/", |e| matches!(e, UrlRefused::Address(_))),
            ("http://metadata.google.internal./", |e| matches!(e, UrlRefused::MetadataHost(_))),
            ("http://0.0.0.0:80", |e| matches!(e, UrlRefused::Address(_))),
        ];
        for (url, want) in cases {
            let got = check_target_url(url).expect_err(url);
            assert!(want(&got), "{url}: {got:?}");
        }
    }

    #[test]
    fn disguised_metadata_addresses_are_refused() {
        // WHATWG parsing turns these spellings into 169.254.169.254.
        for url in
            ["http://0xA9FEA9FE/", "http://2852039166/", "http://169.254.43518/", "http://[::ffff:169.254.169.254]/"]
        {
            assert!(matches!(check_target_url(url), Err(UrlRefused::Address(_))), "{url}");
        }
        assert!(refused_ip("fd00:ec2::254".parse().unwrap()));
        assert!(refused_ip("ff02::1".parse().unwrap()));
        assert!(refused_ip("255.255.255.255".parse().unwrap()));
        assert!(!refused_ip("fd00:ec2::253".parse().unwrap()));
        assert!(!refused_ip("127.0.0.1".parse().unwrap()));
        assert!(!refused_ip("::1".parse().unwrap()));
        assert!(!refused_ip("192.168.1.10".parse().unwrap()));
    }

    #[test]
    fn service_url_appends_one_segment() {
        let u = |t: &str, s: &str| service_url(t, s).map(|u| u.to_string());
        assert_eq!(u("https://w.net", "ocr").unwrap(), "https://w.net/service/ocr");
        assert_eq!(u("https://w.net/", "ocr").unwrap(), "https://w.net/service/ocr");
        assert_eq!(
            u("http://127.0.0.1:9/api//", "llm-inference").unwrap(),
            "http://127.0.0.1:9/api/service/llm-inference"
        );
        assert_eq!(u("https://w.net", ".."), Err(UrlRefused::DotService("..".into())));
        assert_eq!(u("https://w.net", "."), Err(UrlRefused::DotService(".".into())));
        assert_eq!(u("http://169.254.169.254", "ocr"), Err(UrlRefused::Address("169.254.169.254".parse().unwrap())));
    }
}
