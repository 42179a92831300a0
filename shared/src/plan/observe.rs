//! What planning observes: listings of repositories and tags, manifest HEADs and GETs,
//! referrers. [`Observe`] is that set of reads; [`Live`] answers it from registries and
//! ECR's API, and the unit tests below [`super::Planner`] answer it from plain values and
//! count what was asked, so the order and number of requests (what a re-sync costs at a
//! distance, what a metered registry counts) is tested without servers.

use std::future::Future;

use serde_json::Value;

use super::enumerate;
use crate::aws::AwsClients;
use crate::digest::Digest;
use crate::error::Result;
use crate::filter::TagInfo;
use crate::manifest::Manifest;
use crate::reference::ImageRef;
use crate::registry::{ManifestHead, ReadRegistry, RegistryClient};

/// The reads planning makes: a registry's, and the listings of a source.
pub trait Observe: ReadRegistry {
    /// Repository names of an ECR registry (under `prefix`, if given), sorted.
    fn ecr_repositories(
        &self,
        account: &str,
        region: &str,
        prefix: Option<&str>,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// The tagged images of an ECR repository, one entry per tag with digest and push
    /// time, sorted by tag.
    fn ecr_tags(
        &self,
        account: &str,
        region: &str,
        repository: &str,
    ) -> impl Future<Output = Result<Vec<TagInfo>>> + Send;

    /// Repository names from a registry's catalog, sorted.
    fn catalog(&self, host: &str) -> impl Future<Output = Result<Vec<String>>> + Send;
}

/// Observations from the registries and ECR's API themselves.
#[derive(Clone, Copy)]
pub struct Live<'a> {
    pub registry: &'a RegistryClient,
    pub aws: &'a AwsClients,
}

impl ReadRegistry for Live<'_> {
    fn list_tags(&self, image: &ImageRef) -> impl Future<Output = Result<Vec<String>>> + Send {
        self.registry.list_tags(image)
    }

    fn head_manifest(
        &self,
        image: &ImageRef,
        reference: &str,
    ) -> impl Future<Output = Result<Option<ManifestHead>>> + Send {
        self.registry.head_manifest(image, reference)
    }

    fn get_manifest(
        &self,
        image: &ImageRef,
        reference: &str,
    ) -> impl Future<Output = Result<Manifest>> + Send {
        self.registry.get_manifest(image, reference)
    }

    fn referrers(
        &self,
        image: &ImageRef,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> impl Future<Output = Result<Option<Vec<Value>>>> + Send {
        self.registry.referrers(image, subject, artifact_type)
    }

    fn meters_pulls(&self, registry: &str) -> bool {
        self.registry.meters_pulls(registry)
    }
}

impl Observe for Live<'_> {
    fn ecr_repositories(
        &self,
        account: &str,
        region: &str,
        prefix: Option<&str>,
    ) -> impl Future<Output = Result<Vec<String>>> + Send {
        enumerate::ecr_repositories(self.aws, account, region, prefix)
    }

    fn ecr_tags(
        &self,
        account: &str,
        region: &str,
        repository: &str,
    ) -> impl Future<Output = Result<Vec<TagInfo>>> + Send {
        enumerate::ecr_tags(self.aws, account, region, repository)
    }

    fn catalog(&self, host: &str) -> impl Future<Output = Result<Vec<String>>> + Send {
        enumerate::registry_repositories(self.registry, host)
    }
}
