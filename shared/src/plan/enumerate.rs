//! Listing what a source holds: ECR through its API (`DescribeRepositories`,
//! `DescribeImages`, which also give digests and push times), any other registry through
//! `/v2/_catalog` and tag lists. Pagination is followed to the end in both.

use crate::aws::{self, AwsClients};
use crate::error::Result;
use crate::filter::TagInfo;
use crate::reference::ImageRef;
use crate::registry::{ReadRegistry, RegistryClient};

/// Repository names of an ECR registry, optionally only those under `prefix`.
pub async fn ecr_repositories(
    aws: &AwsClients,
    account: &str,
    region: &str,
    prefix: Option<&str>,
) -> Result<Vec<String>> {
    let client = aws.ecr(region).await;
    let mut pages = client
        .describe_repositories()
        .registry_id(account)
        .max_results(1000)
        .into_paginator()
        .send();
    let mut names = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws::error("ecr:DescribeRepositories", &e))?;
        for repo in page.repositories() {
            if let Some(name) = repo.repository_name() {
                if prefix.is_none_or(|p| name.starts_with(p)) {
                    names.push(name.to_string());
                }
            }
        }
    }
    names.sort();
    Ok(names)
}

/// The tagged images of an ECR repository, one entry per tag, with digest and push time.
/// Untagged images are not synced: nothing names them at the destination.
pub async fn ecr_tags(
    aws: &AwsClients,
    account: &str,
    region: &str,
    repository: &str,
) -> Result<Vec<TagInfo>> {
    let client = aws.ecr(region).await;
    let mut pages = client
        .describe_images()
        .registry_id(account)
        .repository_name(repository)
        .filter(
            aws_sdk_ecr::types::DescribeImagesFilter::builder()
                .tag_status(aws_sdk_ecr::types::TagStatus::Tagged)
                .build(),
        )
        .max_results(1000)
        .into_paginator()
        .send();
    let mut tags = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws::error("ecr:DescribeImages", &e))?;
        for image in page.image_details() {
            let pushed_at = image.image_pushed_at().map(|t| t.secs());
            for tag in image.image_tags() {
                tags.push(TagInfo {
                    name: tag.clone(),
                    digest: image.image_digest().map(str::to_string),
                    pushed_at,
                });
            }
        }
    }
    tags.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tags)
}

/// Repository names from a registry's catalog.
pub async fn registry_repositories(client: &RegistryClient, host: &str) -> Result<Vec<String>> {
    let mut names = client.catalog(host).await?;
    names.sort();
    Ok(names)
}

/// The tags of a repository; a tags list says nothing of digests or push times.
pub async fn registry_tags(
    client: &impl ReadRegistry,
    repository: &ImageRef,
) -> Result<Vec<TagInfo>> {
    let mut tags: Vec<TagInfo> = client
        .list_tags(repository)
        .await?
        .iter()
        .map(|t| TagInfo::named(t))
        .collect();
    tags.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tags)
}
