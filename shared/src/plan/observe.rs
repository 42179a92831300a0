//! What planning observes: listings of repositories and tags, manifest HEADs and GETs,
//! referrers. [`Observe`] is that set of reads; [`Live`] answers it from registries and
//! ECR's API, and the unit tests below [`super::Planner`] answer it from plain values and
//! count what was asked, so the order and number of requests (what a re-sync costs at a
//! distance, what a metered registry counts) is tested without servers.

use std::future::Future;

use super::enumerate;
use crate::aws::AwsClients;
use crate::error::Result;
use crate::filter::TagInfo;
use crate::registry::{ReadRegistry, RegistryClient};

/// The reads planning makes: a registry's, and the listings of a source.
pub trait Observe: Sync {
    /// Who answers reads of manifests and tag lists.
    type Registry: ReadRegistry;

    fn registry(&self) -> &Self::Registry;

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

impl Observe for Live<'_> {
    type Registry = RegistryClient;

    fn registry(&self) -> &RegistryClient {
        self.registry
    }

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
