//! Carrying out a planned copy job: what the copier Lambda does with each message and
//! `ferry sync` does with each job of its plan, so both behave the same. Missing ECR
//! destination repositories are created first (once per process), then the image is copied
//! to every destination under its overwrite policy.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::aws::AwsClients;
use crate::config::CreateRepository;
use crate::copy::{Copier, CopyRequest, PlanHints};
use crate::ecr_host::EcrHost;
use crate::error::{Error, Result};
use crate::message::{CopyJob, MessageError};
use crate::reference::ImageRef;
use crate::report::{DestinationReport, ErrorInfo, ImageReport, Status};

pub struct JobRunner {
    copier: Copier,
    aws: Arc<AwsClients>,
    /// ECR repositories this process has made sure exist.
    created: Mutex<HashSet<String>>,
}

/// Why a job could not start.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job itself is wrong (a bad reference); no retry can help.
    #[error(transparent)]
    Invalid(#[from] MessageError),
    /// Preparing a destination failed (creating an ECR repository).
    #[error(transparent)]
    Prepare(#[from] Error),
}

impl JobError {
    /// The failure as an image report, so a job that never started is counted and shown
    /// like any other failed image.
    pub fn report(&self, job: &CopyJob) -> ImageReport {
        let error = match self {
            JobError::Invalid(e) => ErrorInfo {
                kind: crate::batch::BAD_MESSAGE,
                message: e.to_string(),
                retryable: false,
                end: None,
                quota: None,
            },
            JobError::Prepare(e) => ErrorInfo::from(e),
        };
        ImageReport {
            source: job.source.to_string(),
            digest: None,
            status: Status::Failed,
            destinations: job
                .destinations
                .iter()
                .map(|d| DestinationReport {
                    reference: d.reference.to_string(),
                    status: Status::Failed,
                    error: None,
                    backup: None,
                })
                .collect(),
            stats: Default::default(),
            artifacts: Vec::new(),
            duration_ms: 0,
            error: Some(error),
        }
    }
}

impl JobRunner {
    pub fn new(copier: Copier, aws: Arc<AwsClients>) -> Self {
        JobRunner {
            copier,
            aws,
            created: Mutex::new(HashSet::new()),
        }
    }

    pub fn copier(&self) -> &Copier {
        &self.copier
    }

    /// Copy `job`'s image to all its destinations: one report per overwrite policy among
    /// them (usually one).
    /// `hints` are what planning in this process learnt of the image (`ferry sync`);
    /// default for a job from a queue.
    pub async fn run(
        &self,
        job: &CopyJob,
        hints: &PlanHints,
    ) -> std::result::Result<Vec<ImageReport>, JobError> {
        let requests = requests(job, hints)?;
        for d in &job.destinations {
            if let Some(settings) = d.create_repository {
                self.ensure_repository(&d.reference, settings).await?;
            }
        }
        let mut reports = Vec::new();
        for request in &requests {
            reports.push(self.copier.copy_image(request).await);
        }
        Ok(reports)
    }

    /// Create an ECR destination repository, once per process.
    async fn ensure_repository(&self, image: &ImageRef, settings: CreateRepository) -> Result<()> {
        let Some(host) = EcrHost::parse(image.registry()) else {
            return Ok(());
        };
        let key = format!("{}/{}", image.registry(), image.repository());
        if self.created.lock().await.contains(&key) {
            return Ok(());
        }
        let client = self.aws.ecr(&host.region).await;
        let mutability = if settings.immutable {
            aws_sdk_ecr::types::ImageTagMutability::Immutable
        } else {
            aws_sdk_ecr::types::ImageTagMutability::Mutable
        };
        let result = client
            .create_repository()
            .registry_id(&host.account)
            .repository_name(image.repository())
            .image_tag_mutability(mutability)
            .image_scanning_configuration(
                aws_sdk_ecr::types::ImageScanningConfiguration::builder()
                    .scan_on_push(settings.scan_on_push)
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::info!(repository = %key, immutable = settings.immutable, "created ECR repository")
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_already_exists_exception()) => {}
            Err(e) => return Err(crate::aws::error("ecr:CreateRepository", &e)),
        }
        self.created.lock().await.insert(key);
        Ok(())
    }
}

/// One copy request per overwrite policy and backup template (destinations of one job
/// usually share them), in the job's order.
fn requests(
    job: &CopyJob,
    hints: &PlanHints,
) -> std::result::Result<Vec<CopyRequest>, MessageError> {
    let mut base = job.request()?;
    base.hints = hints.clone();
    let mut out: Vec<CopyRequest> = Vec::new();
    for (d, reference) in job.destinations.iter().zip(&base.destinations) {
        match out
            .iter_mut()
            .find(|r| r.overwrite == d.overwrite && r.backup == d.backup)
        {
            Some(request) => request.destinations.push(reference.clone()),
            None => out.push(CopyRequest {
                destinations: vec![reference.clone()],
                overwrite: d.overwrite,
                backup: d.backup.clone(),
                ..base.clone()
            }),
        }
    }
    Ok(out)
}
