//! The planner function's handler: an event in, messages out, a summary back.
//!
//! Manual and scheduled syncs of a registry fan out one planning task per repository to
//! the planning queue (when one is configured), so no invocation enumerates a whole
//! registry; the planner, triggered again by that queue, plans each repository and sends
//! its copy jobs. Image lists, ECR pushes and dry runs are planned in the invocation.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::aws::AwsClients;
use crate::batch::{BatchQueue, Disposition, Record};
use crate::config::SourceKind;
use crate::error::{Error, Result};
use crate::event::{ManualSync, PlannerEvent};
use crate::message::{Message, Reason, RepositoryTask};
use crate::plan::{Plan, PlanOptions, Planner};
use crate::queue::SqsQueue;
use crate::service::{FunctionSettings, Services};

/// Planning tasks of one batch planned at the same time (the template delivers one at a
/// time; a larger batch size is not planned one after another).
const TASKS_AT_ONCE: usize = 4;

pub struct PlannerHandler {
    pub services: Services,
    copy_queue: SqsQueue,
    /// Where per-repository planning tasks go; without it every source is planned inline.
    plan_queue: Option<SqsQueue>,
    /// The planning queue as a batch source: retries, dead letters.
    tasks: BatchQueue,
    options: PlanOptions,
}

/// What one invocation did, returned to a manual invoke and logged for the others.
#[derive(Debug, Default, Serialize)]
pub struct PlannerSummary {
    pub event: &'static str,
    pub sources: Vec<String>,
    pub repositories: usize,
    pub tags: usize,
    pub messages_sent: usize,
    /// Removal messages (each a destination repository's tags to remove).
    pub removal_messages_sent: usize,
    pub planning_tasks_sent: usize,
    pub up_to_date: usize,
    pub skipped: usize,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}

impl PlannerHandler {
    /// The planner as deployed with `settings`: it needs the copy queue; with a planning
    /// queue it fans registry syncs out per repository.
    pub async fn new(
        aws: Arc<AwsClients>,
        settings: &FunctionSettings,
    ) -> std::result::Result<Self, String> {
        let copy_url = settings.copy_queue_url.clone().ok_or_else(|| {
            format!(
                "{} is not set: the planner sends copy jobs there",
                crate::service::env::COPY_QUEUE_URL
            )
        })?;
        let services = settings.services(aws.clone()).await?;
        let sqs = aws_sdk_sqs::Client::new(aws.config().await);
        Ok(PlannerHandler {
            services,
            copy_queue: SqsQueue::new(sqs.clone(), copy_url),
            plan_queue: settings
                .plan_queue_url
                .as_ref()
                .map(|u| SqsQueue::new(sqs.clone(), u)),
            tasks: BatchQueue {
                sqs,
                url: settings.plan_queue_url.clone(),
                dead_letter_url: settings.dead_letter_queue_url.clone(),
                max_receives: settings.plan_max_receives,
            },
            options: PlanOptions::default(),
        })
    }

    /// A planner for this invocation: expiry is read against its start, not the start of
    /// this (long-lived) function instance.
    fn planner(&self) -> Planner<'_> {
        self.planner_repairing(false)
    }

    /// [`Self::planner`], for a deep check when `repair`: every image gets a job, whatever
    /// its destinations' tags say, and the job sends what is missing under them.
    fn planner_repairing(&self, repair: bool) -> Planner<'_> {
        Planner::new(
            &self.services.config,
            &self.services.registry,
            &self.services.aws,
            PlanOptions {
                now: jiff::Timestamp::now(),
                check_destinations: self.options.check_destinations && !repair,
                repair,
                ..self.options.clone()
            },
        )
    }

    /// Handle any planner event. Errors are for the whole invocation (Lambda retries async
    /// invocations); planning tasks from SQS report failures per record instead.
    pub async fn handle(&self, event: Value) -> Result<Value> {
        let parsed = PlannerEvent::parse(&event).map_err(|e| Error::Config(e.0))?;
        tracing::info!(event = parsed.kind(), "planner invoked");
        let summary = match parsed {
            PlannerEvent::Manual(m) => self.sync(&m, Reason::Manual).await?,
            PlannerEvent::Scheduled => self.sync(&ManualSync::default(), Reason::Schedule).await?,
            PlannerEvent::EcrPush(push) => {
                let plan = self.planner().plan_push(&push).await?;
                let why = match plan.skipped.first() {
                    _ if !plan.jobs.is_empty() || !plan.up_to_date.is_empty() => None,
                    Some(skipped) => Some(format!("{}: {}", skipped.image, skipped.reason)),
                    None => Some(format!("no source covers {}", push.reference())),
                };
                self.event_summary("ecr-push", &plan, why).await?
            }
            PlannerEvent::EcrDelete(deleted) => {
                let plan = self.planner().plan_delete(&deleted)?;
                let why = match &deleted.tag {
                    None => Some(format!(
                        "delete of {}@{} names no tag; the next scheduled sync prunes what it took",
                        deleted.repository, deleted.digest
                    )),
                    Some(_) if plan.removals.is_empty() => Some(format!(
                        "no destination that prunes mirrors {}",
                        deleted.reference()
                    )),
                    Some(_) => None,
                };
                self.event_summary("ecr-delete", &plan, why).await?
            }
            PlannerEvent::Ignored(why) => {
                tracing::info!(reason = %why, "event ignored");
                PlannerSummary {
                    event: "ignored",
                    ignored: Some(why),
                    ..Default::default()
                }
            }
            PlannerEvent::Tasks(records) => return Ok(self.tasks(records).await),
        };
        tracing::info!(
            messages = summary.messages_sent,
            tasks = summary.planning_tasks_sent,
            up_to_date = summary.up_to_date,
            "planned"
        );
        Ok(serde_json::to_value(&summary).expect("summary serializes"))
    }

    /// Send what an ECR event planned; `ignored` says why it planned nothing.
    async fn event_summary(
        &self,
        event: &'static str,
        plan: &Plan,
        ignored: Option<String>,
    ) -> Result<PlannerSummary> {
        let mut summary = PlannerSummary {
            event,
            ..Default::default()
        };
        if let Some(why) = &ignored {
            tracing::info!(reason = %why, "event planned nothing");
        }
        summary.ignored = ignored;
        self.send(plan, &mut summary).await?;
        Ok(summary)
    }

    async fn sync(&self, request: &ManualSync, reason: Reason) -> Result<PlannerSummary> {
        let config = &self.services.config;
        let sources = config
            .sources_named(request.sources.as_deref().unwrap_or_default())
            .map_err(Error::Config)?;
        let mut summary = PlannerSummary {
            event: match reason {
                Reason::Schedule => "schedule",
                _ => "manual",
            },
            sources: sources.iter().map(|s| s.name.clone()).collect(),
            dry_run: request.dry_run,
            ..Default::default()
        };
        let mut whole = Plan::default();
        for source in sources {
            for notice in crate::expiry::notices(source, jiff::Timestamp::now()) {
                tracing::warn!("{notice}");
            }
            let fan_out = self
                .plan_queue
                .as_ref()
                .filter(|_| !request.dry_run && !matches!(source.kind, SourceKind::Images(_)));
            match fan_out {
                Some(queue) => {
                    let tasks = self
                        .planner_repairing(request.repair)
                        .repository_tasks(source, reason, false)
                        .await?;
                    summary.repositories += tasks.len();
                    let bodies: Vec<String> = tasks
                        .into_iter()
                        .map(|t| Message::PlanRepository(t).encode())
                        .collect();
                    summary.planning_tasks_sent += queue.send_all(&bodies).await?;
                }
                None => whole.merge(
                    self.planner_repairing(request.repair)
                        .plan_source(source, reason)
                        .await?,
                ),
            }
        }
        if request.dry_run {
            summary.repositories += whole.repositories;
            summary.tags = whole.tags;
            summary.up_to_date = whole.up_to_date.len();
            summary.skipped = whole.skipped.len();
            summary.plan = Some(whole);
        } else {
            self.send(&whole, &mut summary).await?;
        }
        Ok(summary)
    }

    async fn send(&self, plan: &Plan, summary: &mut PlannerSummary) -> Result<()> {
        let bodies: Vec<String> = plan
            .jobs
            .iter()
            .map(|j| Message::Copy(j.job.clone()).encode())
            .collect();
        summary.messages_sent += self.copy_queue.send_all(&bodies).await?;
        // Removals go on the same queue, after the copies of the same plan.
        let removals: Vec<String> = plan
            .removals
            .iter()
            .map(|r| Message::Remove(r.clone()).encode())
            .collect();
        summary.removal_messages_sent += self.copy_queue.send_all(&removals).await?;
        summary.repositories += plan.repositories;
        summary.tags += plan.tags;
        summary.up_to_date += plan.up_to_date.len();
        summary.skipped += plan.skipped.len();
        for s in &plan.skipped {
            tracing::info!(image = %s.image, reason = %s.reason, "skipped");
        }
        // Loud: the copies are sent, and the invocation or planning task fails with the
        // reason (a task goes to the dead-letter queue with it).
        if !plan.refused_prunes.is_empty() {
            let refused: Vec<String> = plan.refused_prunes.iter().map(|r| r.to_string()).collect();
            return Err(Error::PruneRefused(refused.join("; ")));
        }
        Ok(())
    }

    /// Plan the repositories SQS delivered, each settled as [`crate::batch`] describes: a
    /// task that cannot succeed goes to the dead-letter queue with its reason.
    async fn tasks(&self, records: Vec<Record>) -> Value {
        let (response, _) = self
            .tasks
            .handle(records, TASKS_AT_ONCE, |record| async move {
                let disposition = match self.task(&record.body).await {
                    Ok(sent) => {
                        tracing::info!(message_id = %record.message_id, sent, "repository planned");
                        Disposition::Done
                    }
                    Err(TaskError::Bad(reason)) => Disposition::bad_message(reason),
                    Err(TaskError::Failed(e)) => Disposition::of(&e),
                };
                (disposition, ())
            })
            .await;
        response
    }

    async fn task(&self, body: &str) -> std::result::Result<usize, TaskError> {
        let task: RepositoryTask =
            match Message::decode(body) {
                Ok(Message::PlanRepository(t)) => t,
                Ok(Message::Copy(_) | Message::Remove(_)) => return Err(TaskError::Bad(
                    "a copy or removal message reached the planning queue; point the copier at the copy queue"
                        .into(),
                )),
                Err(e) => return Err(TaskError::Bad(e.to_string())),
            };
        let source = self
            .services
            .config
            .source(&task.source_name)
            .ok_or_else(|| {
                TaskError::Bad(format!(
                    "planning task names source {:?}, which the configuration no longer has",
                    task.source_name
                ))
            })?;
        let plan = self
            .planner_repairing(task.repair)
            .plan_repository(source, &task.repository, task.reason)
            .await?;
        let mut summary = PlannerSummary::default();
        self.send(&plan, &mut summary).await?;
        Ok(summary.messages_sent)
    }
}

/// Why a planning task did not plan.
enum TaskError {
    /// Its body is not a task this configuration can plan.
    Bad(String),
    Failed(Error),
}

impl From<Error> for TaskError {
    fn from(e: Error) -> Self {
        TaskError::Failed(e)
    }
}
