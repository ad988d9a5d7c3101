//! Where to find the network: `host:port` seeds (hostnames welcome) and the
//! platform's bootstrap URL.
//!
//! The Python package accepts only IP addresses and once turned a seed URL
//! into `host:8000:8468`; here a seed is parsed strictly, with a message that
//! names the bad part, and names are resolved when bootstrap runs (so a seed
//! whose DNS entry appears later is picked up on retry).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// The UDP port Kademlia nodes use unless told otherwise.
pub const DEFAULT_PORT: u16 = 8468;

/// A seed as given by the user: a host (name or IP) and a port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Seed {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// UDP port.
    pub port: u16,
}

/// Why seeds could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The seed text is not `host`, `host:port` or `[ipv6]:port`.
    #[error("invalid seed {0:?}: expected host:port, e.g. coordinator.example.org:8468 or 10.0.0.5:8468")]
    Invalid(String),
    /// The port is not a number from 1 to 65535.
    #[error("invalid port in seed {0:?}")]
    BadPort(String),
    /// The host name did not resolve; check the name and DNS.
    #[error("cannot resolve seed {seed}: {source}")]
    Resolve {
        /// The seed as written.
        seed: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// The bootstrap URL could not be fetched or did not return seeds JSON.
    #[error("bootstrap URL {url}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

impl Seed {
    /// Parses `host`, `host:port`, `ip:port` or `[ipv6]:port`.
    pub fn parse(s: &str) -> Result<Seed, SeedError> {
        let s = s.trim();
        let invalid = || SeedError::Invalid(s.to_string());
        if s.is_empty() || s.contains('/') || s.chars().any(char::is_whitespace) {
            return Err(invalid());
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(invalid)?;
            match after {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':').ok_or_else(invalid)?)),
            }
        } else if s.matches(':').count() > 1 {
            // A bare IPv6 literal has no room for a port; anything else with
            // two colons is a mistake like `host:8000:8468`.
            match s.parse::<std::net::Ipv6Addr>() {
                Ok(_) => (s, None),
                Err(_) => return Err(invalid()),
            }
        } else {
            match s.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        if host.is_empty() {
            return Err(invalid());
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| SeedError::BadPort(s.to_string()))?,
        };
        Ok(Seed { host: host.to_string(), port })
    }

    /// Parses a comma- or space-separated list, as in `DHT_SEEDS`.
    pub fn parse_list(s: &str) -> Result<Vec<Seed>, SeedError> {
        s.split([',', ' ']).filter(|p| !p.trim().is_empty()).map(Seed::parse).collect()
    }

    /// Resolves to socket addresses (a name may give several).
    pub async fn resolve(&self) -> Result<Vec<SocketAddr>, SeedError> {
        let addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|source| SeedError::Resolve { seed: self.to_string(), source })?;
        Ok(addrs.collect())
    }
}

impl std::fmt::Display for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Resolves every seed; unresolvable ones are reported, not fatal.
pub async fn resolve_all(seeds: &[Seed]) -> (Vec<SocketAddr>, Vec<SeedError>) {
    let mut addrs = Vec::new();
    let mut errors = Vec::new();
    for seed in seeds {
        match seed.resolve().await {
            Ok(a) => addrs.extend(a),
            Err(e) => errors.push(e),
        }
    }
    addrs.sort();
    addrs.dedup();
    (addrs, errors)
}

#[derive(Deserialize)]
struct SeedsDoc {
    seeds: Vec<SeedEntry>,
    /// Peers whose HTTP address the serving node does not know (kadmesh's
    /// `/api/dht/bootstrap` keeps them out of `seeds`, where the platform's
    /// client requires a `tunnel_url`).
    #[serde(default)]
    more_seeds: Vec<SeedEntry>,
}

#[derive(Deserialize)]
struct SeedEntry {
    host: String,
    dht_port: Option<u16>,
}

/// Largest bootstrap document or seed list read.
const MAX_SEEDS_BODY: usize = 256 * 1024;
/// Most seeds taken from one document or list.
const MAX_SEEDS: usize = 256;

/// Fetches seeds from a bootstrap URL serving the platform's
/// `GET /api/dht/bootstrap` shape: `{"seeds": [{"host", "dht_port"}, ...]}`.
pub async fn fetch_bootstrap_url(url: &str, timeout: Duration) -> Result<Vec<Seed>, SeedError> {
    let body = fetch_text(url, timeout).await?;
    parse_document(&body).map_err(|reason| SeedError::Url { url: url.to_string(), reason })
}

/// Fetches a static seed list (a file on a CDN or code host): either a
/// bootstrap document as [`fetch_bootstrap_url`] reads, or text with one
/// `host:port` per line (`#` comments and blank lines allowed; lines that
/// are not a seed are skipped, but a list without any seed is an error).
pub async fn fetch_seed_list(url: &str, timeout: Duration) -> Result<Vec<Seed>, SeedError> {
    let body = fetch_text(url, timeout).await?;
    parse_seed_list(&body).map_err(|reason| SeedError::Url { url: url.to_string(), reason })
}

/// The seeds in a seed list's text (see [`fetch_seed_list`]).
pub fn parse_seed_list(text: &str) -> Result<Vec<Seed>, String> {
    if text.trim_start().starts_with('{') {
        return parse_document(text);
    }
    let seeds: Vec<Seed> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| Seed::parse(l).ok())
        .take(MAX_SEEDS)
        .collect();
    if seeds.is_empty() {
        return Err("no host:port line in the seed list".into());
    }
    Ok(seeds)
}

/// The seeds of a bootstrap document's JSON text.
pub fn parse_document(text: &str) -> Result<Vec<Seed>, String> {
    let doc: SeedsDoc = serde_json::from_str(text).map_err(|e| format!("not a seeds document: {e}"))?;
    doc.seeds
        .into_iter()
        .chain(doc.more_seeds)
        .take(MAX_SEEDS)
        .map(|s| {
            let host = s.host.trim_start_matches('[').trim_end_matches(']').to_string();
            if host.is_empty() || host.contains('/') {
                return Err(format!("bad seed host {:?}", s.host));
            }
            Ok(Seed { host, port: s.dht_port.unwrap_or(DEFAULT_PORT) })
        })
        .collect()
}

/// The body of `GET url`, at most [`MAX_SEEDS_BODY`] bytes, as text.
async fn fetch_text(url: &str, timeout: Duration) -> Result<String, SeedError> {
    let err = |reason: String| SeedError::Url { url: url.to_string(), reason };
    let client = reqwest::Client::builder().timeout(timeout).build().map_err(|e| err(e.to_string()))?;
    let mut resp = client.get(url).send().await.map_err(|e| err(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(err(format!("HTTP {}", resp.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| err(e.to_string()))? {
        if body.len() + chunk.len() > MAX_SEEDS_BODY {
            return Err(err(format!("answer longer than {MAX_SEEDS_BODY} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| err("answer is not UTF-8 text".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ips_and_defaults() {
        let p = |s| Seed::parse(s).unwrap();
        assert_eq!(p("edge-local-worker:8468"), Seed { host: "edge-local-worker".into(), port: 8468 });
        assert_eq!(p("10.0.0.5"), Seed { host: "10.0.0.5".into(), port: DEFAULT_PORT });
        assert_eq!(p("[::1]:9000"), Seed { host: "::1".into(), port: 9000 });
        assert_eq!(p("::1"), Seed { host: "::1".into(), port: DEFAULT_PORT });
        assert_eq!(p(" node.example.org:1 ").to_string(), "node.example.org:1");
        assert_eq!(p("[::1]:9000").to_string(), "[::1]:9000");
    }

    #[test]
    fn rejects_malformed_seeds_with_a_named_error() {
        for bad in ["host:8000:8468", "", ":8468", "http://x:1", "a b:1", "[::1", "[::1]9000"] {
            assert!(matches!(Seed::parse(bad), Err(SeedError::Invalid(_))), "{bad}");
        }
        for bad in ["host:0", "host:70000", "host:x"] {
            assert!(matches!(Seed::parse(bad), Err(SeedError::BadPort(_))), "{bad}");
        }
        let msg = Seed::parse("host:8000:8468").unwrap_err().to_string();
        assert!(msg.contains("host:8000:8468") && msg.contains("expected host:port"), "{msg}");
    }

    #[test]
    fn parses_env_style_lists() {
        let l = Seed::parse_list("a:1, b:2 c").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[2].port, DEFAULT_PORT);
    }

    #[test]
    fn seed_lists_are_text_lines_or_a_bootstrap_document() {
        let l = parse_seed_list("# seeds\n10.0.0.1:8468\n\nseed.example.org\nnot a seed!\n").unwrap();
        assert_eq!(l, vec![Seed::parse("10.0.0.1:8468").unwrap(), Seed::parse("seed.example.org").unwrap()]);
        let doc = r#"{"seeds": [{"host": "10.0.0.2", "dht_port": 9000}], "more_seeds": [{"host": "[::1]"}]}"#;
        let l = parse_seed_list(doc).unwrap();
        assert_eq!(l, vec![Seed::parse("10.0.0.2:9000").unwrap(), Seed::parse("[::1]:8468").unwrap()]);
        assert!(parse_seed_list("# nothing here\n").is_err());
        assert!(parse_seed_list(r#"{"seeds": [{"host": "a/b"}]}"#).is_err());
        assert!(parse_seed_list("{broken").is_err());
    }

    #[tokio::test]
    async fn resolves_localhost_and_reports_bad_names() {
        let seeds = vec![Seed::parse("localhost:9").unwrap(), Seed::parse("no-such-host.invalid:9").unwrap()];
        let (addrs, errors) = resolve_all(&seeds).await;
        assert!(addrs.iter().any(|a| a.ip().is_loopback() && a.port() == 9));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("no-such-host.invalid"));
    }
}
