//! Content digests (`sha256:<hex>`): parsing, computing and verifying while streaming.
//!
//! A [`Digest`] can only hold a well-formed digest, so code that carries one never has to
//! re-validate it. ferry computes sha256 itself; sha512 digests are accepted from registries
//! and compared as strings, because the copy engine never re-hashes a manifest it did not fetch.
//!
//! Hashing is aws-lc-rs's (already linked as rustls's crypto provider): on CPUs without SHA
//! extensions its assembly is much faster than the sha2 crate's portable code, which was
//! most of ferry's CPU on a copy of large layers (the README's benchmark section has the
//! measurement).

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest::{self as lc, Context};
use serde::{Deserialize, Serialize};

/// A validated OCI content digest, e.g. `sha256:9f86d0…`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid digest {input:?}: {reason}")]
pub struct InvalidDigest {
    pub input: String,
    pub reason: &'static str,
}

impl Digest {
    /// The digest of `bytes` with sha256, the algorithm every registry supports.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        Digest(format!(
            "sha256:{}",
            hex::encode(lc::digest(&lc::SHA256, bytes))
        ))
    }

    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map(|(a, _)| a).unwrap_or_default()
    }

    pub fn hex(&self) -> &str {
        self.0.split_once(':').map(|(_, h)| h).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A hasher for this digest's algorithm, to verify content while it streams past.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            expected: self.clone(),
            hasher: Context::new(match self.algorithm() {
                "sha512" => &lc::SHA512,
                _ => &lc::SHA256,
            }),
            bytes: 0,
        }
    }

    /// Whether `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        let mut v = self.verifier();
        v.update(bytes);
        v.finish().is_ok()
    }
}

impl FromStr for Digest {
    type Err = InvalidDigest;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| InvalidDigest {
            input: s.to_string(),
            reason,
        };
        let (algorithm, hex) = s
            .split_once(':')
            .ok_or_else(|| invalid("expected <algorithm>:<hex>"))?;
        let expected_len = match algorithm {
            "sha256" => 64,
            "sha512" => 128,
            _ => return Err(invalid("unsupported algorithm (expected sha256 or sha512)")),
        };
        if hex.len() != expected_len {
            return Err(invalid("wrong length for its algorithm"));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid("hex part must be lowercase hexadecimal"));
        }
        Ok(Digest(s.to_string()))
    }
}

impl TryFrom<String> for Digest {
    type Error = InvalidDigest;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

/// Hashes content incrementally and checks it against an expected digest at the end.
pub struct Verifier {
    expected: Digest,
    hasher: Context,
    bytes: u64,
}

impl Verifier {
    pub fn update(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        self.hasher.update(chunk);
    }

    pub fn bytes_seen(&self) -> u64 {
        self.bytes
    }

    /// `Ok(())` when the content hashed to the expected digest, else the digest it did hash to.
    pub fn finish(self) -> Result<(), Digest> {
        let actual = format!(
            "{}:{}",
            self.expected.algorithm(),
            hex::encode(self.hasher.finish())
        );
        if actual == self.expected.0 {
            Ok(())
        } else {
            Err(Digest(actual))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_valid_and_rejects_invalid_digests() {
        let cases: &[(&str, bool)] = &[
            (EMPTY, true),
            (&format!("sha512:{}", "a".repeat(128)), true),
            ("sha256:abc", false),
            (&format!("sha256:{}", "A".repeat(64)), false),
            (&format!("md5:{}", "a".repeat(32)), false),
            (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                false,
            ),
            (&format!("sha256:{}/../x", "a".repeat(58)), false),
        ];
        for (input, ok) in cases {
            assert_eq!(input.parse::<Digest>().is_ok(), *ok, "{input}");
        }
    }

    #[test]
    fn sha256_of_empty_is_the_well_known_value() {
        assert_eq!(Digest::sha256_of(b"").as_str(), EMPTY);
        assert_eq!(Digest::sha256_of(b"").hex().len(), 64);
    }

    #[test]
    fn verifier_accepts_streamed_chunks_and_reports_the_actual_digest_on_mismatch() {
        let expected = Digest::sha256_of(b"hello world");
        let mut v = expected.verifier();
        v.update(b"hello ");
        v.update(b"world");
        assert_eq!(v.bytes_seen(), 11);
        assert!(v.finish().is_ok());

        let mut v = expected.verifier();
        v.update(b"hello there");
        assert_eq!(v.finish().unwrap_err(), Digest::sha256_of(b"hello there"));
    }

    #[test]
    fn verifier_hashes_with_the_expected_digests_algorithm() {
        // sha512 of "abc" (FIPS 180-2, appendix C.1).
        let abc: Digest = "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                           2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
            .parse()
            .unwrap();
        assert!(abc.matches(b"abc"));
        let mut v = abc.verifier();
        v.update(b"abd");
        let actual = v.finish().unwrap_err();
        assert_eq!(actual.algorithm(), "sha512");
        assert_ne!(actual, abc);
    }
}
