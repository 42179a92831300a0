//! Where a source image goes: destination name templates and the tag-prefix split.
//!
//! A template is an image reference with placeholders:
//!
//! | placeholder     | value                                                          |
//! |-----------------|----------------------------------------------------------------|
//! | `{registry}`    | the source registry (`123456789012.dkr.ecr.eu-west-1.amazonaws.com`) |
//! | `{repo}`        | the source repository path (`team/app`)                        |
//! | `{repo_base}`   | its last segment (`app`)                                       |
//! | `{tag}`         | the source tag; with a split, the part after the prefix        |
//! | `{image}`       | with a split, the tag's prefix (`api` of `api-1.4`)             |
//! | `{account}`, `{region}` | the AWS account and region ferry runs in               |
//!
//! A template without a tag gets `:{tag}`. The split serves platforms that keep one
//! repository per project with images told apart by tag prefix: `proj:api-1.4` with target
//! `registry.gitlab.com/g/{repo}/{image}:{tag}` lands at `registry.gitlab.com/g/proj/api:1.4`.
//! The reverse needs no split: target `…/proj:{repo_base}-{tag}` turns `g/proj/api:1.4` into
//! `proj:api-1.4`. Pure code.

use crate::reference::ImageRef;

const PLACEHOLDERS: [&str; 7] = [
    "registry",
    "repo",
    "repo_base",
    "tag",
    "image",
    "account",
    "region",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    #[error("unknown placeholder {{{0}}} (known: {{registry}}, {{repo}}, {{repo_base}}, {{tag}}, {{image}}, {{account}}, {{region}})")]
    UnknownPlaceholder(String),
    #[error("unclosed '{{' in {0:?}")]
    Unclosed(String),
    #[error("{{image}} is only known with split_tag; add split_tag or remove {{image}}")]
    ImageWithoutSplit,
    #[error("split_tag needs {{image}} in the target, or every image of the repository would land on the same name")]
    SplitWithoutImage,
    #[error("{{{0}}} has no value: set defaults.{0} in the config (or AWS_REGION / FERRY_ACCOUNT_ID for the functions)")]
    Unset(&'static str),
    #[error("{rendered:?} is not a valid image reference: {reason}")]
    Invalid { rendered: String, reason: String },
}

/// Splits `api-1.4` into image `api` and tag `1.4`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitTag {
    pub separator: String,
    /// Only these prefixes are images; empty means whatever precedes the first separator.
    pub prefixes: Vec<String>,
}

impl SplitTag {
    /// `(image, rest)`, or `None` for a tag that names no image (`latest`, an unknown prefix).
    pub fn split<'t>(&self, tag: &'t str) -> Option<(&'t str, &'t str)> {
        if self.prefixes.is_empty() {
            let (image, rest) = tag.split_once(self.separator.as_str())?;
            return (!image.is_empty() && !rest.is_empty()).then_some((image, rest));
        }
        // Longest prefix first, so `api-gateway` wins over `api` for `api-gateway-2.0`.
        let mut prefixes: Vec<&String> = self.prefixes.iter().collect();
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.len()));
        prefixes.into_iter().find_map(|p| {
            let rest = tag
                .strip_prefix(p.as_str())?
                .strip_prefix(self.separator.as_str())?;
            (!rest.is_empty()).then_some((&tag[..p.len()], rest))
        })
    }
}

/// The values a template is filled with.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    pub registry: &'a str,
    pub repository: &'a str,
    pub tag: &'a str,
    pub account: Option<&'a str>,
    pub region: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub struct Target {
    template: String,
    split: Option<SplitTag>,
}

impl Target {
    pub fn new(template: &str, split: Option<SplitTag>) -> Result<Self, MappingError> {
        let mut template = template.trim().to_string();
        let names = placeholders(&template)?;
        if let Some(unknown) = names.iter().find(|n| !PLACEHOLDERS.contains(&n.as_str())) {
            return Err(MappingError::UnknownPlaceholder(unknown.clone()));
        }
        let has_image = names.iter().any(|n| n == "image");
        match (&split, has_image) {
            (None, true) => return Err(MappingError::ImageWithoutSplit),
            (Some(_), false) => return Err(MappingError::SplitWithoutImage),
            _ => {}
        }
        let last = template.rsplit('/').next().unwrap_or_default();
        if !last.contains(':') && !last.contains('@') {
            template.push_str(":{tag}");
        }
        let target = Target { template, split };
        // Render sample values once, so a template that can never produce a valid reference
        // fails when the config is loaded rather than on the first image.
        target.sample()?;
        Ok(target)
    }

    /// The template filled with sample values, whatever the split's prefixes: what the
    /// configuration checks (validity, which registry it points at) look at.
    pub fn sample(&self) -> Result<ImageRef, MappingError> {
        let vars = Vars {
            registry: "registry.example.com",
            repository: "team/app",
            tag: "1.0",
            account: Some("123456789012"),
            region: Some("eu-west-1"),
        };
        let image = self.split.as_ref().map(|_| "image");
        self.fill(&vars, image, vars.tag)
    }

    pub fn template(&self) -> &str {
        &self.template
    }

    /// The split of source tags into image names, if the target has one.
    pub fn split_tag(&self) -> Option<&SplitTag> {
        self.split.as_ref()
    }

    /// The destination for one source tag; `None` when a split is configured and the tag
    /// names no image.
    pub fn render(&self, vars: &Vars<'_>) -> Result<Option<ImageRef>, MappingError> {
        let (image, tag) = match &self.split {
            None => (None, vars.tag),
            Some(split) => match split.split(vars.tag) {
                Some((image, rest)) => (Some(image), rest),
                None => return Ok(None),
            },
        };
        self.fill(vars, image, tag).map(Some)
    }

    /// Whether the destination tag carries the source tag (`{tag}` is in the template), so
    /// that a destination tag can be traced back to the source tag it came from.
    pub fn names_tag(&self) -> bool {
        placeholders(&self.template).is_ok_and(|names| names.iter().any(|n| n == "tag"))
    }

    /// The inverse of [`Target::render`] for one source repository (`vars.tag` is not used):
    /// what a mirror holds is traced back this way to decide what is ferry's to prune. The
    /// pattern is made from the template rendered with markers in place of `{tag}` and
    /// `{image}`, so it matches the form references take once parsed (`myorg/app` is
    /// `docker.io/myorg/app`); each answer is rendered forward again and must give the
    /// destination exactly, so a template that repeats a placeholder, or a split prefix that
    /// does not apply, yields `None`, never a wrong tag. `None` when the template has no
    /// `{tag}` (nothing can be traced) or cannot render for this repository.
    pub fn tracer<'t>(&'t self, vars: &Vars<'t>) -> Option<TagTracer<'t>> {
        const TAG: &str = "ferrytagmarker";
        const IMAGE: &str = "ferryimagemarker";
        if !self.names_tag() {
            return None;
        }
        let image = self.split.as_ref().map(|_| IMAGE);
        let marked = self.fill(vars, image, TAG).ok()?.to_string();
        let mut pattern = String::from("^");
        let mut captured = (false, false);
        let mut rest = marked.as_str();
        loop {
            let next = [(TAG, rest.find(TAG)), (IMAGE, rest.find(IMAGE))]
                .into_iter()
                .filter_map(|(m, at)| at.map(|at| (m, at)))
                .min_by_key(|(_, at)| *at);
            let Some((marker, at)) = next else { break };
            pattern.push_str(&regex::escape(&rest[..at]));
            match marker {
                TAG if !captured.0 => {
                    captured.0 = true;
                    pattern.push_str("(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]*)");
                }
                IMAGE if !captured.1 => {
                    captured.1 = true;
                    pattern.push_str("(?P<image>[a-z0-9][a-z0-9._/-]*?)");
                }
                // A repeated placeholder matches anything here; the forward render decides.
                _ => pattern.push_str(".*?"),
            }
            rest = &rest[at + marker.len()..];
        }
        pattern.push_str(&regex::escape(rest));
        pattern.push('$');
        Some(TagTracer {
            target: self,
            vars: *vars,
            pattern: regex::Regex::new(&pattern).ok()?,
        })
    }

    fn fill(
        &self,
        vars: &Vars<'_>,
        image: Option<&str>,
        tag: &str,
    ) -> Result<ImageRef, MappingError> {
        let repo_base = vars.repository.rsplit('/').next().unwrap_or_default();
        let mut out = String::with_capacity(self.template.len() + 32);
        let mut rest = self.template.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').expect("checked in new") + open;
            let value = match &rest[open + 1..close] {
                "registry" => vars.registry,
                "repo" => vars.repository,
                "repo_base" => repo_base,
                "tag" => tag,
                "image" => image.unwrap_or_default(),
                "account" => vars.account.ok_or(MappingError::Unset("account"))?,
                "region" => vars.region.ok_or(MappingError::Unset("region"))?,
                other => return Err(MappingError::UnknownPlaceholder(other.to_string())),
            };
            out.push_str(value);
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out.parse().map_err(
            |e: crate::reference::InvalidReference| MappingError::Invalid {
                rendered: out.clone(),
                reason: e.to_string(),
            },
        )
    }
}

/// A [`Target`] read backwards for one source repository: see [`Target::tracer`].
pub struct TagTracer<'t> {
    target: &'t Target,
    vars: Vars<'t>,
    pattern: regex::Regex,
}

impl TagTracer<'_> {
    /// The source tag that renders to `destination`, if one does.
    pub fn source_tag(&self, destination: &ImageRef) -> Option<String> {
        let wanted = destination.to_string();
        let found = self.pattern.captures(&wanted)?;
        let tag = found.name("tag")?.as_str();
        let source_tag = match (&self.target.split, found.name("image")) {
            (Some(split), Some(image)) => format!("{}{}{tag}", image.as_str(), split.separator),
            (None, None) => tag.to_string(),
            _ => return None,
        };
        let forward = Vars {
            tag: &source_tag,
            ..self.vars
        };
        (self.target.render(&forward).ok()??.to_string() == wanted).then_some(source_tag)
    }
}

fn placeholders(template: &str) -> Result<Vec<String>, MappingError> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| MappingError::Unclosed(template.to_string()))?
            + open;
        names.push(rest[open + 1..close].to_string());
        rest = &rest[close + 1..];
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(repo: &'a str, tag: &'a str) -> Vars<'a> {
        Vars {
            registry: "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            repository: repo,
            tag,
            account: Some("210987654321"),
            region: Some("us-east-2"),
        }
    }

    fn render(template: &str, split: Option<SplitTag>, repo: &str, tag: &str) -> Option<String> {
        Target::new(template, split)
            .unwrap()
            .render(&vars(repo, tag))
            .unwrap()
            .map(|r| r.to_string())
    }

    fn dash(prefixes: &[&str]) -> Option<SplitTag> {
        Some(SplitTag {
            separator: "-".into(),
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        })
    }

    #[test]
    fn renders_templates() {
        let cases = [
            (
                "registry.gitlab.com/group/project/{repo}:{tag}",
                "team/app",
                "1.4",
                "registry.gitlab.com/group/project/team/app:1.4",
            ),
            (
                "{account}.dkr.ecr.{region}.amazonaws.com/mirror/{repo}",
                "library/alpine",
                "3.20",
                "210987654321.dkr.ecr.us-east-2.amazonaws.com/mirror/library/alpine:3.20",
            ),
            (
                "localhost:5000/{repo_base}",
                "a/b/c",
                "v1",
                "localhost:5000/c:v1",
            ),
            (
                "ghcr.io/acme/proj:{repo_base}-{tag}",
                "group/proj/api",
                "1.4",
                "ghcr.io/acme/proj:api-1.4",
            ),
        ];
        for (template, repo, tag, expected) in cases {
            assert_eq!(
                render(template, None, repo, tag).as_deref(),
                Some(expected),
                "{template}"
            );
        }
    }

    #[test]
    fn splits_tag_prefixes_into_repositories() {
        let t = "registry.gitlab.com/g/{repo}/{image}:{tag}";
        assert_eq!(
            render(t, dash(&[]), "proj", "api-1.4").as_deref(),
            Some("registry.gitlab.com/g/proj/api:1.4")
        );
        assert_eq!(render(t, dash(&[]), "proj", "latest"), None);
        let known = dash(&["api", "api-gateway"]);
        assert_eq!(
            render(t, known.clone(), "proj", "api-gateway-2.0").as_deref(),
            Some("registry.gitlab.com/g/proj/api-gateway:2.0")
        );
        assert_eq!(render(t, known, "proj", "worker-1.0"), None);
    }

    #[test]
    fn template_mistakes_are_caught_when_loading() {
        let split = dash(&[]);
        let cases: [(&str, Option<SplitTag>, MappingError); 4] = [
            (
                "reg.example.com/{repository}",
                None,
                MappingError::UnknownPlaceholder("repository".into()),
            ),
            (
                "reg.example.com/{repo",
                None,
                MappingError::Unclosed("reg.example.com/{repo".into()),
            ),
            (
                "reg.example.com/{image}",
                None,
                MappingError::ImageWithoutSplit,
            ),
            (
                "reg.example.com/{repo}",
                split,
                MappingError::SplitWithoutImage,
            ),
        ];
        for (template, split, expected) in cases {
            assert_eq!(
                Target::new(template, split).unwrap_err(),
                expected,
                "{template}"
            );
        }
        assert!(matches!(
            Target::new("Reg.example.com/UPPER/{repo}", None).unwrap_err(),
            MappingError::Invalid { .. }
        ));
        // Checked even when the split's prefixes would match no sample tag.
        assert!(matches!(
            Target::new("reg.example.com/UPPER/{image}", dash(&["api"])).unwrap_err(),
            MappingError::Invalid { .. }
        ));
    }

    #[test]
    fn destination_tags_trace_back_to_the_source_tag_they_came_from() {
        // Template, split, source repository, destination, the source tag (None: not one
        // this repository's mapping could have made).
        type Case<'a> = (&'a str, Option<SplitTag>, &'a str, &'a str, Option<&'a str>);
        let cases: Vec<Case> = vec![
            (
                "dst.example/{repo}",
                None,
                "team/app",
                "dst.example/team/app:1.4",
                Some("1.4"),
            ),
            (
                "dst.example/{repo}",
                None,
                "team/app",
                "dst.example/team/other:1.4",
                None,
            ),
            (
                "dst.example/m/{repo}:v{tag}",
                None,
                "app",
                "dst.example/m/app:v2",
                Some("2"),
            ),
            (
                "dst.example/m/{repo}:v{tag}",
                None,
                "app",
                "dst.example/m/app:2",
                None,
            ),
            (
                "ghcr.io/acme/proj:{repo_base}-{tag}",
                None,
                "g/proj/api",
                "ghcr.io/acme/proj:api-1.4",
                Some("1.4"),
            ),
            (
                "ghcr.io/acme/proj:{repo_base}-{tag}",
                None,
                "g/proj/api",
                "ghcr.io/acme/proj:worker-1.4",
                None,
            ),
            (
                "reg.example/g/{repo}/{image}:{tag}",
                dash(&[]),
                "proj",
                "reg.example/g/proj/api:1.4",
                Some("api-1.4"),
            ),
            (
                "reg.example/g/{repo}/{image}:{tag}",
                dash(&[]),
                "proj",
                "reg.example/g/proj/a/b:1.4",
                Some("a/b-1.4"),
            ),
            (
                "reg.example/g/{repo}/{image}:{tag}",
                dash(&["api"]),
                "proj",
                "reg.example/g/proj/worker:1.4",
                None,
            ),
            (
                "reg.example/g/{repo}/{image}:{tag}",
                dash(&["api"]),
                "proj",
                "reg.example/g/proj/api:1.4",
                Some("api-1.4"),
            ),
            (
                "{account}.dkr.ecr.{region}.amazonaws.com/{repo}",
                None,
                "lib/alpine",
                "210987654321.dkr.ecr.us-east-2.amazonaws.com/lib/alpine:3",
                Some("3"),
            ),
            (
                "dst.example/{repo}:{tag}-{tag}",
                None,
                "app",
                "dst.example/app:1-1",
                Some("1"),
            ),
            (
                "dst.example/{repo}:{tag}-{tag}",
                None,
                "app",
                "dst.example/app:1-2",
                None,
            ),
            // Docker Hub written short: references are compared in the form they parse to.
            (
                "myorg/{repo_base}",
                None,
                "team/app",
                "docker.io/myorg/app:1.4",
                Some("1.4"),
            ),
            (
                "docker.io/{repo_base}",
                None,
                "team/alpine",
                "docker.io/library/alpine:3",
                Some("3"),
            ),
        ];
        for (template, split, repo, destination, expected) in cases {
            let target = Target::new(template, split).unwrap();
            let destination: ImageRef = destination.parse().unwrap();
            let tracer = target.tracer(&vars(repo, "")).unwrap();
            assert_eq!(
                tracer.source_tag(&destination).as_deref(),
                expected,
                "{template} ← {destination}"
            );
        }
    }

    #[test]
    fn a_template_without_the_tag_cannot_be_traced_back() {
        assert!(Target::new("dst.example/{repo}", None).unwrap().names_tag());
        let fixed = Target::new("dst.example/{repo}:latest", None).unwrap();
        assert!(!fixed.names_tag());
        assert!(fixed.tracer(&vars("app", "")).is_none());
    }

    #[test]
    fn account_and_region_must_be_known() {
        let t = Target::new("{account}.dkr.ecr.{region}.amazonaws.com/{repo}", None).unwrap();
        let mut v = vars("app", "1");
        v.account = None;
        assert_eq!(t.render(&v).unwrap_err(), MappingError::Unset("account"));
    }
}
