//! Which URL a registry name is reached at, and whether plain HTTP is allowed for it.
//!
//! TLS is the default for every host. Plain HTTP is used only for hosts the user named
//! insecure, for loopback hosts when the user allowed that, or for an endpoint override the
//! user wrote with an explicit `http://` (tests map an ECR host to a local registry that way).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use url::Url;

use crate::error::{Error, Result};
use crate::reference::{DOCKER_HUB, DOCKER_HUB_API_HOST};

#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    insecure: HashSet<String>,
    insecure_loopback: bool,
    overrides: HashMap<String, Url>,
}

impl Endpoints {
    pub fn new() -> Self {
        Self::default()
    }

    /// Allow plain HTTP to `host` (`host[:port]`).
    pub fn insecure_host(mut self, host: &str) -> Self {
        self.insecure.insert(host.to_ascii_lowercase());
        self
    }

    /// Allow plain HTTP to loopback addresses (127.0.0.0/8, ::1, localhost).
    pub fn insecure_loopback(mut self, allow: bool) -> Self {
        self.insecure_loopback = allow;
        self
    }

    /// Send requests for registry `name` to `target` (`host:port` or a URL).
    pub fn route(mut self, name: &str, target: &str) -> Result<Self> {
        let url = if target.contains("://") {
            Url::parse(target)
        } else {
            let scheme = if self.allows_http(target) {
                "http"
            } else {
                "https"
            };
            Url::parse(&format!("{scheme}://{target}"))
        }
        .map_err(|e| {
            Error::Config(format!(
                "registry endpoint {target:?} for {name} is not a valid host or URL: {e}"
            ))
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(Error::Config(format!(
                "registry endpoint {target:?} must be http:// or https://"
            )));
        }
        self.overrides.insert(name.to_ascii_lowercase(), url);
        Ok(self)
    }

    /// Parse `NAME=TARGET[,NAME=TARGET…]` as given in `FERRY_REGISTRY_ENDPOINTS`.
    pub fn routes_from_list(mut self, list: &str) -> Result<Self> {
        for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, target) = pair.split_once('=').ok_or_else(|| {
                Error::Config(format!(
                    "registry endpoint {pair:?} must be NAME=HOST:PORT or NAME=URL"
                ))
            })?;
            self = self.route(name.trim(), target.trim())?;
        }
        Ok(self)
    }

    fn allows_http(&self, host: &str) -> bool {
        self.insecure.contains(&host.to_ascii_lowercase())
            || (self.insecure_loopback && is_loopback(host))
    }

    /// The base URL (`scheme://host[:port]`) for registry `name`.
    pub fn base_url(&self, name: &str) -> Url {
        let name = name.to_ascii_lowercase();
        if let Some(u) = self.overrides.get(&name) {
            return u.clone();
        }
        let host = if name == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            name.as_str()
        };
        let scheme = if self.allows_http(&name) {
            "http"
        } else {
            "https"
        };
        Url::parse(&format!("{scheme}://{host}"))
            .expect("a parsed reference's registry is a valid host")
    }

    /// Whether plain HTTP may carry credentials to `url` (token realms).
    pub fn http_allowed_for(&self, url: &Url) -> bool {
        if url.scheme() == "https" {
            return true;
        }
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => return false,
        };
        self.allows_http(&host)
            || self
                .overrides
                .values()
                .any(|o| o.scheme() == "http" && o.host_str() == url.host_str())
    }
}

/// `127.0.0.1:5000`, `[::1]:5000`, `localhost` …
pub fn is_loopback(host: &str) -> bool {
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else if host.matches(':').count() > 1 {
        host
    } else {
        host.split(':').next().unwrap_or_default()
    };
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_by_default_http_only_when_allowed() {
        let e = Endpoints::new();
        assert_eq!(
            e.base_url("127.0.0.1:5000").as_str(),
            "https://127.0.0.1:5000/"
        );
        assert_eq!(
            e.base_url("docker.io").as_str(),
            "https://registry-1.docker.io/"
        );
        let e = Endpoints::new()
            .insecure_loopback(true)
            .insecure_host("reg.lan:5000");
        assert_eq!(
            e.base_url("127.0.0.1:5000").as_str(),
            "http://127.0.0.1:5000/"
        );
        assert_eq!(e.base_url("[::1]:5000").scheme(), "http");
        assert_eq!(e.base_url("reg.lan:5000").scheme(), "http");
        assert_eq!(e.base_url("reg.lan:5001").scheme(), "https");
        assert_eq!(e.base_url("10.0.0.1:5000").scheme(), "https");
    }

    #[test]
    fn routes_map_names_to_targets() {
        let e = Endpoints::new()
            .routes_from_list("123456789012.dkr.ecr.us-east-1.amazonaws.com=http://127.0.0.1:5001, r.io=mirror.lan")
            .unwrap();
        assert_eq!(
            e.base_url("123456789012.dkr.ecr.us-east-1.amazonaws.com")
                .as_str(),
            "http://127.0.0.1:5001/"
        );
        assert_eq!(e.base_url("r.io").as_str(), "https://mirror.lan/");
        assert!(e.http_allowed_for(&Url::parse("http://127.0.0.1:5001/token").unwrap()));
        assert!(!e.http_allowed_for(&Url::parse("http://evil.example/token").unwrap()));
        assert!(Endpoints::new().routes_from_list("nonsense").is_err());
        assert!(Endpoints::new().route("r.io", "ftp://x").is_err());
    }

    #[test]
    fn loopback_detection() {
        for (h, lo) in [
            ("127.0.0.1:1", true),
            ("127.5.0.1", true),
            ("localhost:80", true),
            ("[::1]:5000", true),
            ("::1", true),
            ("10.0.0.1", false),
            ("example.com", false),
        ] {
            assert_eq!(is_loopback(h), lo, "{h}");
        }
    }
}
