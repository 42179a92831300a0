//! The copier function's handler: an SQS batch of copy messages in, a partial-batch
//! response out.
//!
//! Records are copied concurrently (bounded), and each is settled as [`crate::batch`]
//! describes: copied, up to date or kept (overwrite off) is done; a failure that may pass
//! is delivered again, one that cannot goes to the dead-letter queue with its reason; an
//! image waiting for a registry's spent pull quota is parked until the quota allows.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::metrics;
use crate::aws::AwsClients;
use crate::batch::{self, BatchQueue, Disposition, Record};
use crate::copy::{Copier, PlanHints};
use crate::error::{Error, Result};
use crate::jobs::{JobError, JobRunner};
use crate::message::{Message, RemoveJob};
use crate::remove::{self, Remover};
use crate::report::{ImageReport, RunReport, Status};
use crate::service::{FunctionSettings, Services};

pub struct CopierHandler {
    pub services: Services,
    jobs: JobRunner,
    queue: BatchQueue,
    /// Records of one batch copied at the same time.
    concurrency: usize,
    /// Print CloudWatch metrics (EMF) on stdout after each batch.
    emit_metrics: bool,
}

impl CopierHandler {
    /// The copier as deployed with `settings`: its clients, the copy queue it parks and
    /// backs off on, the dead-letter queue, and records copied `image_concurrency` at once.
    pub async fn new(
        aws: Arc<AwsClients>,
        settings: &FunctionSettings,
    ) -> std::result::Result<Self, String> {
        let services = settings.services(aws.clone()).await?;
        let options = services.copy_options();
        let concurrency = options.image_concurrency;
        let copier = Copier::new(services.registry.clone(), options);
        let jobs = JobRunner::new(copier, services.aws.clone());
        let queue = BatchQueue {
            sqs: aws_sdk_sqs::Client::new(aws.config().await),
            url: settings.copy_queue_url.clone(),
            dead_letter_url: settings.dead_letter_queue_url.clone(),
            max_receives: settings.copy_max_receives,
        };
        Ok(CopierHandler {
            services,
            jobs,
            queue,
            concurrency,
            emit_metrics: settings.emit_metrics,
        })
    }

    /// Handle an SQS event (`{"Records": [...]}`); returns `{"batchItemFailures": [...]}`.
    pub async fn handle(&self, event: Value) -> Result<Value> {
        let records = batch::records(&event, "the copier").map_err(|e| {
            Error::Config(format!(
                "{e}; invoke the planner for everything that is not a copy job"
            ))
        })?;
        let started = std::time::Instant::now();
        self.jobs.copier().begin_batch();
        let (response, reports) = self
            .queue
            .handle(records, self.concurrency, |record| async move {
                self.record(&record).await
            })
            .await;
        let images: Vec<ImageReport> = reports.into_iter().flatten().collect();
        let report = RunReport::from_images(images, started.elapsed().as_millis() as u64);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        if self.emit_metrics {
            // EMF must be a line of its own on stdout, not inside a tracing record.
            println!("{}", metrics::copier_metrics(&report, now));
        }
        Ok(response)
    }

    async fn record(&self, record: &Record) -> (Disposition, Vec<ImageReport>) {
        // A parked job delivered before its time (a wait longer than one delay) goes back
        // to wait the rest, without a registry request.
        if let Some(until) = record.parked_until {
            if until > SystemTime::now() + Duration::from_secs(1) {
                let reason = "parked for a pull quota; not due yet".to_string();
                return (Disposition::Park { until, reason }, Vec::new());
            }
        }
        let (disposition, reports) = self.process(&record.body).await;
        for r in &reports {
            tracing::info!(message_id = %record.message_id, source = %r.source, status = ?r.status, bytes = r.stats.bytes_uploaded, duration_ms = r.duration_ms, "image done");
        }
        (disposition, reports)
    }

    /// Copy the job in `body`; the reports are those of a job that ran to the end.
    async fn process(&self, body: &str) -> (Disposition, Vec<ImageReport>) {
        let job = match Message::decode(body) {
            Ok(Message::Copy(job)) => job,
            Ok(Message::Remove(job)) => return (self.removal(&job).await, Vec::new()),
            Ok(Message::PlanRepository(_)) => {
                return (Disposition::bad_message(
                    "a planning task reached the copy queue; point the planner's trigger at the planning queue",
                ), Vec::new())
            }
            Err(e) => return (Disposition::bad_message(e.to_string()), Vec::new()),
        };
        let reports = match self.jobs.run(&job, &PlanHints::default()).await {
            Ok(reports) => reports,
            Err(JobError::Invalid(e)) => {
                return (Disposition::bad_message(e.to_string()), Vec::new())
            }
            Err(JobError::Prepare(e)) => return (Disposition::of(&e), Vec::new()),
        };
        let failed: Vec<&ImageReport> = reports
            .iter()
            .filter(|r| r.status == Status::Failed)
            .collect();
        if failed.is_empty() {
            return (Disposition::Done, reports);
        }
        let reason = failed
            .iter()
            .filter_map(|r| r.first_error().map(|e| e.message.clone()))
            .collect::<Vec<_>>()
            .join("; ");
        let disposition = if failed.iter().all(|r| r.retryable()) {
            Disposition::Retry { reason }
        } else if let Some(until) = parked_until(&failed) {
            Disposition::Park { until, reason }
        } else {
            let kind = failed
                .iter()
                .find_map(|r| r.first_error().filter(|e| !e.retryable).map(|e| e.kind))
                .unwrap_or("failed")
                .to_string();
            Disposition::Permanent { kind, reason }
        };
        // Only a job that ran to its end counts its images; one that goes round again is
        // counted when it does.
        (disposition, Vec::new())
    }
}

impl CopierHandler {
    /// Remove a removal message's tags, where the configuration says the destination is a
    /// mirror of that source.
    async fn removal(&self, job: &RemoveJob) -> Disposition {
        if let Err(reason) = remove::permitted(&self.services.config, job, jiff::Timestamp::now()) {
            return Disposition::Permanent {
                kind: remove::NOT_A_MIRROR.into(),
                reason,
            };
        }
        let reports = Remover::new(&self.services.registry, &self.services.aws)
            .remove(job)
            .await;
        for r in &reports {
            tracing::info!(destination = %r.destination, outcome = ?r.outcome, artifacts = r.artifacts.len(), "removal done");
        }
        remove::disposition(&reports)
    }
}

/// When every failed image can be tried again once the pull quotas they wait for allow, and
/// at least one waits for one: the latest reset.
fn parked_until(failed: &[&ImageReport]) -> Option<SystemTime> {
    let mut latest = None;
    for r in failed {
        match r.waits_for_quota() {
            Some(q) => latest = latest.max(Some(q.resets_at)),
            None if r.retryable() => {}
            None => return None,
        }
    }
    latest.map(|at| UNIX_EPOCH + Duration::from_secs(at))
}
