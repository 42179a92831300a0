//! The reads that planning and the search for artifacts make of a registry, as a trait:
//! [`RegistryClient`] answers them over HTTP, and unit tests answer them from plain values,
//! so the flow that decides which requests to make can be tested without servers.

use std::future::Future;

use serde_json::Value;

use super::{ManifestHead, RegistryClient};
use crate::digest::Digest;
use crate::error::Result;
use crate::manifest::Manifest;
use crate::reference::ImageRef;

pub trait ReadRegistry: Sync {
    /// Every tag of `image`'s repository ([`crate::error::Error::RepositoryNotFound`] when
    /// there is no such repository).
    fn list_tags(&self, image: &ImageRef) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// A manifest's digest and media type, `None` when the tag or digest does not exist.
    fn head_manifest(
        &self,
        image: &ImageRef,
        reference: &str,
    ) -> impl Future<Output = Result<Option<ManifestHead>>> + Send;

    /// A manifest's exact bytes ([`crate::error::Error::ManifestNotFound`] when absent).
    fn get_manifest(
        &self,
        image: &ImageRef,
        reference: &str,
    ) -> impl Future<Output = Result<Manifest>> + Send;

    /// The referrers of `subject` from the OCI 1.1 API, `None` when the registry lacks it.
    fn referrers(
        &self,
        image: &ImageRef,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> impl Future<Output = Result<Option<Vec<Value>>>> + Send;

    /// Whether `registry` counts manifest GETs against a pull quota.
    fn meters_pulls(&self, registry: &str) -> bool;
}

impl ReadRegistry for RegistryClient {
    fn list_tags(&self, image: &ImageRef) -> impl Future<Output = Result<Vec<String>>> + Send {
        RegistryClient::list_tags(self, image)
    }

    fn head_manifest(
        &self,
        image: &ImageRef,
        reference: &str,
    ) -> impl Future<Output = Result<Option<ManifestHead>>> + Send {
        RegistryClient::head_manifest(self, image, reference)
    }

    fn get_manifest(
        &self,
        image: &ImageRef,
        reference: &str,
    ) -> impl Future<Output = Result<Manifest>> + Send {
        RegistryClient::get_manifest(self, image, reference)
    }

    fn referrers(
        &self,
        image: &ImageRef,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> impl Future<Output = Result<Option<Vec<Value>>>> + Send {
        RegistryClient::referrers(self, image, subject, artifact_type)
    }

    fn meters_pulls(&self, registry: &str) -> bool {
        RegistryClient::meters_pulls(self, registry)
    }
}
