//! The serverless pipeline on one machine, through the real handler code: a planner and a
//! copier handler wired to moto's SQS the way Lambda's triggers wire them. Tests and the
//! demo drive it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry::aws::AwsClients;
use ferry::config::SyncConfig;
use ferry::handler::copier::CopierHandler;
use ferry::handler::planner::PlannerHandler;
use ferry::registry::Endpoints;
use ferry::service::FunctionSettings;
use serde_json::Value;

use crate::moto::{MotoServer, ACCOUNT, REGION};
use crate::sqs;

pub struct LocalPipeline {
    pub planner: PlannerHandler,
    pub copier: CopierHandler,
    pub sqs: aws_sdk_sqs::Client,
    pub copy_url: String,
    pub plan_url: String,
    pub dlq_url: String,
    /// Make failed records visible again at once instead of after their backoff, so a
    /// drain runs each message to its end: done, or in the dead-letter queue.
    pub redeliver_at_once: bool,
    /// What both handlers were built from, as a deployed stack's environment gives it.
    pub settings: FunctionSettings,
    aws: Arc<AwsClients>,
}

/// What running a function over a queue until it was empty did.
#[derive(Debug, Default)]
pub struct Drained {
    /// Lambda invocations (one per batch of up to ten records).
    pub invocations: usize,
    pub records: usize,
    /// Message ids the function asked SQS to redeliver.
    pub failed: Vec<String>,
}

impl LocalPipeline {
    /// [`LocalPipeline::start`] for registries on loopback over plain HTTP, as most tests
    /// have them.
    pub async fn on_loopback(moto: &MotoServer, config: &str, fan_out: bool) -> LocalPipeline {
        Self::start(
            moto,
            config,
            Endpoints::new().insecure_loopback(true),
            fan_out,
        )
        .await
    }

    /// Queues `ferry-copy`, `ferry-plan` and `ferry-dead-letter` on `moto`, and both
    /// handlers for `config` (YAML or JSON) in moto's account and region, built as the
    /// functions' mains build them. With `fan_out`, registry syncs go through the planning
    /// queue, as in the deployed stack. Metrics are not printed.
    pub async fn start(
        moto: &MotoServer,
        config: &str,
        endpoints: Endpoints,
        fan_out: bool,
    ) -> LocalPipeline {
        let sdk = moto.sdk_config().await;
        let aws = Arc::new(AwsClients::from_config(sdk.clone()));
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let copy_url = sqs::create_queue(&sqs, "ferry-copy").await;
        let plan_url = sqs::create_queue(&sqs, "ferry-plan").await;
        let dlq_url = sqs::create_queue(&sqs, "ferry-dead-letter").await;
        let config = SyncConfig::parse(config)
            .unwrap_or_else(|e| panic!("configuration: {e}"))
            .with_home(Some(ACCOUNT.into()), Some(REGION.into()));
        let settings = FunctionSettings {
            config,
            endpoints,
            fleet_size: 1,
            copy_queue_url: Some(copy_url.clone()),
            plan_queue_url: fan_out.then(|| plan_url.clone()),
            dead_letter_queue_url: Some(dlq_url.clone()),
            copy_max_receives: None,
            plan_max_receives: None,
            emit_metrics: false,
        };
        let planner = PlannerHandler::new(aws.clone(), &settings)
            .await
            .expect("planner");
        let copier = CopierHandler::new(aws.clone(), &settings)
            .await
            .expect("copier");
        LocalPipeline {
            planner,
            copier,
            sqs,
            copy_url,
            plan_url,
            dlq_url,
            redeliver_at_once: false,
            settings,
            aws,
        }
    }

    /// A copier deployed with these settings changed by `change` (e.g. the copy queue's
    /// `maxReceiveCount`): its own process, with its own clients.
    pub async fn copier_with(&self, change: impl FnOnce(&mut FunctionSettings)) -> CopierHandler {
        let mut settings = self.settings.clone();
        change(&mut settings);
        CopierHandler::new(self.aws.clone(), &settings)
            .await
            .expect("copier")
    }

    /// `n` copier handlers as `n` Lambda invocations running at once are: each its own
    /// process, with its own registry client, pacing to its share of the registries' limits
    /// (a fleet of `n`), deployed with the settings `change` makes.
    pub async fn fleet(
        &self,
        n: u32,
        change: impl Fn(&mut FunctionSettings),
    ) -> Vec<CopierHandler> {
        let mut handlers = Vec::new();
        for _ in 0..n {
            handlers.push(
                self.copier_with(|s| {
                    s.fleet_size = n;
                    change(s);
                })
                .await,
            );
        }
        handlers
    }

    /// Run `copier` over the copy queue until it is empty, as [`Self::drain_copies`] does.
    pub async fn drain_copies_with(&self, copier: &CopierHandler) -> Drained {
        self.drain(
            &self.copy_url,
            &AtomicBool::new(false),
            |event| async move { copier.handle(event).await.expect("copier") },
        )
        .await
    }

    pub async fn receive(&self, url: &str) -> sqs::Batch {
        sqs::receive(&self.sqs, url).await
    }

    /// Run the copier over the copy queue until it is empty, deleting what it reports
    /// done, as Lambda's event source mapping does.
    pub async fn drain_copies(&self) -> Drained {
        self.drain_copies_while(&AtomicBool::new(false)).await
    }

    /// Like [`Self::drain_copies`], started while something is still sending copy jobs: an
    /// empty queue ends the drain only once `producing` is false. This is how the deployed
    /// copier runs during a planner's fan-out, and it keeps moto's queue short (its SQS
    /// costs time in proportion to the messages waiting, on every message sent or received).
    pub async fn drain_copies_while(&self, producing: &AtomicBool) -> Drained {
        self.drain(&self.copy_url, producing, |event| async move {
            self.copier.handle(event).await.expect("copier")
        })
        .await
    }

    /// Run the planner over the planning queue until it is empty.
    pub async fn drain_planning(&self) -> Drained {
        self.drain(
            &self.plan_url,
            &AtomicBool::new(false),
            |event| async move { self.planner.handle(event).await.expect("planner") },
        )
        .await
    }

    async fn drain<F, Fut>(&self, url: &str, producing: &AtomicBool, function: F) -> Drained
    where
        F: Fn(Value) -> Fut,
        Fut: std::future::Future<Output = Value>,
    {
        let mut drained = Drained::default();
        loop {
            // Read before receiving: a producer that finished before an empty receive sent
            // everything that receive could have seen.
            let more_coming = producing.load(Ordering::Acquire);
            let batch = self.receive(url).await;
            if batch.is_empty() {
                if !more_coming {
                    return drained;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let response = function(batch.event.clone()).await;
            drained.invocations += 1;
            drained.records += batch.records().len();
            let failed = sqs::settle(&self.sqs, url, &batch, &response).await;
            if self.redeliver_at_once {
                sqs::release(&self.sqs, url, &batch, &failed).await;
            }
            drained.failed.extend(failed);
        }
    }
}
