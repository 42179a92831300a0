//! Kept history before an overwrite: a destination with `backup: "{tag}-{digest12}"` keeps
//! the image a moved tag pointed at under a tag of its own before the tag is moved, as
//! regsync does, so a bad upstream push can be rolled back by hand. Pure code.
//!
//! Placeholders: `{tag}` (the destination tag being overwritten, required), and at least
//! one that tells successive backups of one tag apart: `{digest12}` (the first twelve hex
//! digits of the image it held), `{date}` (`20270630`, UTC, when it was replaced) or
//! `{datetime}` (`20270630T181500Z`).

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::Digest;

const PLACEHOLDERS: [&str; 4] = ["{tag}", "{digest12}", "{date}", "{datetime}"];

#[derive(Debug, Clone)]
pub struct BackupTemplate {
    template: String,
    /// Whole tags of the form this template makes.
    pattern: Regex,
}

impl PartialEq for BackupTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.template == other.template
    }
}

impl Eq for BackupTemplate {}

impl BackupTemplate {
    /// Whether `tag` has the form of this template's backups. Such a tag at the
    /// destination is a backup, outside the domain the destination mirrors: never pruned,
    /// never reported as extra, and never made by a copy (a source tag of that form is not
    /// mirrored there), so backups and mirrored tags cannot collide.
    pub fn is_backup(&self, tag: &str) -> bool {
        self.pattern.is_match(tag)
    }

    /// The backup tag for `tag`, which held `previous`, replaced at `now`.
    pub fn render(&self, tag: &str, previous: &Digest, now: Timestamp) -> Result<String, String> {
        let hex = previous.as_str().split_once(':').map_or("", |(_, h)| h);
        let utc = jiff::tz::TimeZone::UTC.to_datetime(now);
        let rendered = self
            .template
            .replace("{tag}", tag)
            .replace("{digest12}", &hex[..hex.len().min(12)])
            .replace("{datetime}", &utc.strftime("%Y%m%dT%H%M%SZ").to_string())
            .replace("{date}", &utc.strftime("%Y%m%d").to_string());
        match crate::reference::is_tag(&rendered) {
            true => Ok(rendered),
            false => Err(format!(
                "the backup tag {rendered:?} (from {:?} for tag {tag}) is not a valid tag: at most 128 letters, digits, '_', '.' and '-'",
                self.template
            )),
        }
    }

    /// A backup tag of the kind this template makes, for checks made before any exists.
    pub fn sample(&self) -> String {
        self.template
            .replace("{tag}", "1.0")
            .replace("{digest12}", "0123456789ab")
            .replace("{datetime}", "20270630T181500Z")
            .replace("{date}", "20270630")
    }

    pub fn as_str(&self) -> &str {
        &self.template
    }
}

impl FromStr for BackupTemplate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut rest = s;
        let mut pattern = String::from("^");
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .map(|c| open + c + 1)
                .ok_or_else(|| format!("{s:?}: an unclosed {{"))?;
            let placeholder = &rest[open..close];
            pattern.push_str(&regex::escape(&rest[..open]));
            pattern.push_str(match placeholder {
                "{tag}" => ".+",
                "{digest12}" => "[0-9a-f]{12}",
                "{date}" => "[0-9]{8}",
                "{datetime}" => "[0-9]{8}T[0-9]{6}Z",
                _ => {
                    return Err(format!(
                        "{s:?}: unknown placeholder {placeholder}; a backup tag may use {}",
                        PLACEHOLDERS.join(", ")
                    ))
                }
            });
            rest = &rest[close..];
        }
        pattern.push_str(&regex::escape(rest));
        pattern.push('$');
        if !s.contains("{tag}") {
            return Err(format!(
                "{s:?} does not name the tag it keeps: put {{tag}} in it, e.g. \"{{tag}}-{{digest12}}\""
            ));
        }
        if !["{digest12}", "{date}", "{datetime}"]
            .iter()
            .any(|p| s.contains(p))
        {
            return Err(format!(
                "{s:?} would give every backup of a tag the same name, so each would replace the last: add {{digest12}}, {{date}} or {{datetime}}"
            ));
        }
        let template = BackupTemplate {
            template: s.to_string(),
            pattern: Regex::new(&pattern).expect("escaped literals and fixed classes"),
        };
        if !crate::reference::is_tag(&template.sample()) {
            return Err(format!(
                "{s:?} makes tags such as {:?}, which are not valid tags",
                template.sample()
            ));
        }
        Ok(template)
    }
}

impl fmt::Display for BackupTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.template)
    }
}

impl Serialize for BackupTemplate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.template)
    }
}

impl<'de> Deserialize<'de> for BackupTemplate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_tag_and_what_tells_its_backups_apart() {
        let previous: Digest = format!("sha256:{}", "3f2a9c1b2d4e".repeat(5) + "abcd")
            .parse()
            .unwrap();
        let now: Timestamp = "2027-06-30T18:15:00Z".parse().unwrap();
        let cases = [
            ("{tag}-{digest12}", "1.4", "1.4-3f2a9c1b2d4e"),
            ("backup-{tag}-{date}", "latest", "backup-latest-20270630"),
            ("{tag}.{datetime}", "v2", "v2.20270630T181500Z"),
        ];
        for (template, tag, expected) in cases {
            let t: BackupTemplate = template.parse().unwrap();
            assert_eq!(
                t.render(tag, &previous, now).unwrap(),
                expected,
                "{template}"
            );
        }
        let t: BackupTemplate = "{tag}-{digest12}".parse().unwrap();
        assert!(t.is_backup("1.4-3f2a9c1b2d4e"));
        assert!(t.is_backup("api-1.4-3f2a9c1b2d4e"));
        assert!(!t.is_backup("1.4"));
        assert!(!t.is_backup("1.4-3F2A9C1B2D4E"), "digests are lower case");
        assert!(!t.is_backup("1.4-3f2a9c1b2d4e0"));
        let dated: BackupTemplate = "old.{tag}.{date}".parse().unwrap();
        assert!(dated.is_backup("old.latest.20270630"));
        assert!(
            !dated.is_backup("oldxlatest.20270630"),
            "literals are literal"
        );
        let long = "x".repeat(120);
        let e = "{tag}-{digest12}"
            .parse::<BackupTemplate>()
            .unwrap()
            .render(&long, &previous, now)
            .unwrap_err();
        assert!(e.contains("at most 128"), "{e}");
    }

    #[test]
    fn refuses_templates_that_lose_backups_or_make_no_tag() {
        let cases = [
            ("{digest12}", "does not name the tag"),
            ("{tag}-old", "same name"),
            ("{tag}-{sha}", "unknown placeholder {sha}"),
            ("{tag}-{digest12", "unclosed"),
            ("{tag}/{date}", "not valid tags"),
        ];
        for (template, expected) in cases {
            let e = template.parse::<BackupTemplate>().unwrap_err();
            assert!(e.contains(expected), "{template}: {e}");
        }
    }
}
