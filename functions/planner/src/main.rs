//! The planner Lambda: builds its clients once per cold start and hands every event to
//! [`ferry::handler::planner::PlannerHandler`]. Configuration: `FERRY_CONFIG` (or
//! `FERRY_CONFIG_SECRET`), `FERRY_COPY_QUEUE_URL`, optional `FERRY_PLAN_QUEUE_URL`.

use std::sync::Arc;

use ferry::aws::AwsClients;
use ferry::handler::planner::PlannerHandler;
use ferry::plan::PlanOptions;
use ferry::queue::SqsQueue;
use ferry::service::{self, env};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    service::init_function_logging();
    let aws = Arc::new(AwsClients::from_environment());
    let services = service::services_from_environment(aws.clone()).await?;
    let sqs = aws_sdk_sqs::Client::new(aws.config().await);
    let copy_queue = std::env::var(env::COPY_QUEUE_URL)
        .map_err(|_| format!("{} is not set", env::COPY_QUEUE_URL))?;
    let handler = PlannerHandler {
        services,
        copy_queue: SqsQueue::new(sqs.clone(), copy_queue),
        plan_queue: std::env::var(env::PLAN_QUEUE_URL)
            .ok()
            .filter(|u| !u.is_empty())
            .map(|u| SqsQueue::new(sqs, u)),
        options: PlanOptions::default(),
    };
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handler.handle(event.payload).await.map_err(|e| {
            tracing::error!(error = %e, kind = e.kind(), "planner failed");
            Error::from(e.to_string())
        })
    }))
    .await
}
