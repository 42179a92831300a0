//! The planner Lambda: builds its clients once per cold start and hands every event to
//! [`ferry::handler::planner::PlannerHandler`]. Settings: see
//! [`ferry::service::FunctionSettings`] (`FERRY_CONFIG` or `FERRY_CONFIG_SECRET`,
//! `FERRY_COPY_QUEUE_URL`, optional `FERRY_PLAN_QUEUE_URL`, `FERRY_DEAD_LETTER_QUEUE_URL`,
//! `FERRY_PLAN_MAX_RECEIVES`, …).

use std::sync::Arc;

use ferry::aws::AwsClients;
use ferry::handler::planner::PlannerHandler;
use ferry::service::{self, FunctionSettings};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    service::init_function_logging();
    let aws = Arc::new(AwsClients::from_environment());
    let settings = FunctionSettings::from_environment(&aws).await?;
    let handler = PlannerHandler::new(aws, &settings).await?;
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handler.handle(event.payload).await.map_err(|e| {
            tracing::error!(error = %e, kind = e.kind(), "planner failed");
            Error::from(e.to_string())
        })
    }))
    .await
}
