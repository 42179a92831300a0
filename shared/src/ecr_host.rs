//! Amazon ECR registry hosts: `<account>.dkr.ecr.<region>.amazonaws.com`, and the forms
//! the other partitions take (FIPS endpoints `dkr.ecr-fips`, China regions under
//! `amazonaws.com.cn`).
//!
//! A leaf: parsing and building hosts needs nothing else of ferry, so errors, pacing, auth
//! and planning can all ask "is this ECR?" without depending on each other. Every host
//! ferry builds from an account and a region is built here, so a region in another
//! partition gets the host that partition serves.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EcrHost {
    pub account: String,
    pub region: String,
    /// The FIPS endpoint (`dkr.ecr-fips.`), which only some US and GovCloud regions have.
    pub fips: bool,
}

impl EcrHost {
    /// The standard (non-FIPS) registry of `account` in `region`.
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> EcrHost {
        EcrHost {
            account: account.into(),
            region: region.into(),
            fips: false,
        }
    }

    /// Recognize an ECR registry host, with or without a port.
    pub fn parse(host: &str) -> Option<EcrHost> {
        let host = host.split(':').next()?;
        let labels: Vec<&str> = host.split('.').collect();
        let (account, rest) = labels.split_first()?;
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (ecr, region) = match rest {
            ["dkr", ecr, region, "amazonaws", "com"] if !region.starts_with("cn-") => {
                (*ecr, *region)
            }
            ["dkr", ecr, region, "amazonaws", "com", "cn"] if region.starts_with("cn-") => {
                (*ecr, *region)
            }
            _ => return None,
        };
        let fips = match ecr {
            "ecr" => false,
            "ecr-fips" => true,
            _ => return None,
        };
        let region_ok = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        region_ok.then(|| EcrHost {
            account: account.to_string(),
            region: region.to_string(),
            fips,
        })
    }

    /// Whether `host` is an ECR registry.
    pub fn is_ecr(host: &str) -> bool {
        EcrHost::parse(host).is_some()
    }

    /// The DNS suffix of the region's partition.
    fn domain(&self) -> &'static str {
        if self.region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        }
    }
}

impl fmt::Display for EcrHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ecr = if self.fips { "ecr-fips" } else { "ecr" };
        write!(
            f,
            "{}.dkr.{ecr}.{}.{}",
            self.account,
            self.region,
            self.domain()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_ecr_hosts_only() {
        let cases = [
            (
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
                Some(("123456789012", "eu-west-1", false)),
            ),
            (
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com:443",
                Some(("123456789012", "eu-west-1", false)),
            ),
            (
                "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
                Some(("123456789012", "us-east-1", true)),
            ),
            (
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
                Some(("123456789012", "cn-north-1", false)),
            ),
            // A China region is served only under .com.cn, and only China regions are.
            ("123456789012.dkr.ecr.cn-north-1.amazonaws.com", None),
            ("123456789012.dkr.ecr.eu-west-1.amazonaws.com.cn", None),
            ("12345.dkr.ecr.eu-west-1.amazonaws.com", None),
            ("123456789012.dkr.ecs.eu-west-1.amazonaws.com", None),
            ("public.ecr.aws", None),
            ("registry.gitlab.com", None),
            (
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.com",
                None,
            ),
        ];
        for (host, expected) in cases {
            let got = EcrHost::parse(host);
            assert_eq!(
                got.as_ref()
                    .map(|h| (h.account.as_str(), h.region.as_str(), h.fips)),
                expected,
                "{host}"
            );
        }
    }

    #[test]
    fn hosts_are_built_for_the_region_s_partition() {
        let cases = [
            (
                EcrHost::new("123456789012", "eu-west-1"),
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            ),
            (
                EcrHost::new("123456789012", "cn-northwest-1"),
                "123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn",
            ),
            (
                EcrHost {
                    fips: true,
                    ..EcrHost::new("123456789012", "us-gov-west-1")
                },
                "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
            ),
        ];
        for (host, text) in cases {
            assert_eq!(host.to_string(), text);
            assert_eq!(EcrHost::parse(text), Some(host), "{text} round-trips");
        }
    }
}
