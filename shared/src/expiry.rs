//! When a mapping stops: `expires:` on a source, an entry of an `images:` list, or a
//! destination. Past it, planning copies nothing for that mapping, and a destination that
//! prunes loses the tags it mirrored there. Pure code: the time is the caller's.
//!
//! A date (`2027-06-30`) runs through the end of that day in UTC, as a support end date
//! is read; an RFC 3339 time (`2027-06-30T18:00:00Z`) is that instant.

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Serialize, Serializer};

/// How long before its expiry a mapping is warned about.
pub const WARN_WITHIN_DAYS: i64 = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// The first instant at which the mapping is expired.
    at: Timestamp,
    /// As written, when written as a date.
    date: Option<Date>,
}

/// Where a mapping stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Live,
    /// Expires within [`WARN_WITHIN_DAYS`]: in this many whole days (0: within a day).
    Expiring {
        days: i64,
    },
    Expired,
}

impl Expiry {
    pub fn standing(&self, now: Timestamp) -> Standing {
        if now >= self.at {
            return Standing::Expired;
        }
        let left = self.at.duration_since(now);
        let day = SignedDuration::from_hours(24);
        match left <= day * WARN_WITHIN_DAYS as i32 {
            true => Standing::Expiring {
                days: left.as_secs() / day.as_secs(),
            },
            false => Standing::Live,
        }
    }

    pub fn has_passed(&self, now: Timestamp) -> bool {
        self.standing(now) == Standing::Expired
    }
}

/// Whether `expires` (absent: never) has passed at `now`.
pub fn passed(expires: Option<&Expiry>, now: Timestamp) -> bool {
    expires.is_some_and(|e| e.has_passed(now))
}

impl FromStr for Expiry {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(date) = s.parse::<Date>() {
            if s.len() == "2027-06-30".len() {
                let at = date
                    .tomorrow()
                    .and_then(|d| TimeZone::UTC.to_timestamp(d.to_datetime(Time::midnight())))
                    .map_err(|e| format!("{s:?}: {e}"))?;
                return Ok(Expiry {
                    at,
                    date: Some(date),
                });
            }
        }
        match s.parse::<Timestamp>() {
            Ok(at) => Ok(Expiry { at, date: None }),
            Err(_) => Err(format!(
                "{s:?} is not a date or time: write a date such as 2027-06-30 (expires at the end of that day, UTC) or an RFC 3339 time with its offset such as 2027-06-30T18:00:00Z"
            )),
        }
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.date {
            Some(date) => write!(f, "{date}"),
            None => write!(f, "{}", self.at),
        }
    }
}

impl Serialize for Expiry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// An expired or soon expiring mapping, for `ferry plan` and the planner's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiryNotice {
    pub source: String,
    /// What expires: `source`, `destination TARGET` or `image REF`.
    pub mapping: String,
    pub expires: Expiry,
    pub expired: bool,
    /// Whole days left, for one expiring soon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_left: Option<i64>,
}

impl fmt::Display for ExpiryNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.mapping.as_str() {
            "source" => format!("source {}", self.source),
            mapping => format!("{mapping} of source {}", self.source),
        };
        match self.days_left {
            None => write!(
                f,
                "{what} expired ({}): nothing of it is copied, and destinations that prune lose what it mirrored",
                self.expires
            ),
            Some(0) => write!(f, "{what} expires within a day ({})", self.expires),
            Some(days) => write!(f, "{what} expires in {days} days ({})", self.expires),
        }
    }
}

/// What of `source` has expired or expires within [`WARN_WITHIN_DAYS`] at `now`.
pub fn notices(source: &crate::config::Source, now: Timestamp) -> Vec<ExpiryNotice> {
    let mut dated: Vec<(String, Expiry)> = Vec::new();
    dated.extend(source.expires.map(|e| ("source".to_string(), e)));
    for d in &source.destinations {
        dated.extend(
            d.expires
                .map(|e| (format!("destination {}", d.target.template()), e)),
        );
    }
    if let crate::config::SourceKind::Images(images) = &source.kind {
        for listed in images {
            dated.extend(
                listed
                    .expires
                    .map(|e| (format!("image {}", listed.image), e)),
            );
        }
    }
    dated
        .into_iter()
        .filter_map(|(mapping, expires)| {
            let days_left = match expires.standing(now) {
                Standing::Live => return None,
                Standing::Expired => None,
                Standing::Expiring { days } => Some(days),
            };
            Some(ExpiryNotice {
                source: source.name.clone(),
                mapping,
                expires,
                expired: days_left.is_none(),
                days_left,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_date_runs_to_the_end_of_its_day_and_a_time_to_its_instant() {
        let date: Expiry = "2027-06-30".parse().unwrap();
        let time: Expiry = "2027-06-30T18:00:00+02:00".parse().unwrap();
        // What, expiry, now, standing.
        let cases = [
            (
                "a month before",
                date,
                "2027-05-30T00:00:00Z",
                Standing::Live,
            ),
            (
                "just outside the warning",
                date,
                "2027-06-16T23:59:59Z",
                Standing::Live,
            ),
            (
                "two weeks before the end of the day",
                date,
                "2027-06-17T00:00:00Z",
                Standing::Expiring { days: 14 },
            ),
            (
                "on the day itself",
                date,
                "2027-06-30T23:59:59Z",
                Standing::Expiring { days: 0 },
            ),
            (
                "the next day",
                date,
                "2027-07-01T00:00:00Z",
                Standing::Expired,
            ),
            (
                "an hour before the time (16:00 UTC)",
                time,
                "2027-06-30T15:00:00Z",
                Standing::Expiring { days: 0 },
            ),
            (
                "at the time",
                time,
                "2027-06-30T16:00:00Z",
                Standing::Expired,
            ),
        ];
        for (what, expiry, now, standing) in cases {
            assert_eq!(expiry.standing(at(now)), standing, "{what}");
        }
        assert_eq!(date.to_string(), "2027-06-30");
        assert_eq!(time.to_string(), "2027-06-30T16:00:00Z");
    }

    #[test]
    fn what_is_not_a_date_or_time_says_what_to_write() {
        for bad in [
            "30/06/2027",
            "2027-13-01",
            "2027-06-30T18:00:00",
            "soon",
            "2027-6-3",
        ] {
            let e = bad.parse::<Expiry>().unwrap_err();
            assert!(e.contains("2027-06-30T18:00:00Z"), "{bad}: {e}");
        }
    }
}
