//! The copier Lambda: builds its clients once per cold start and hands every SQS batch to
//! [`ferry::handler::copier::CopierHandler`]. Configuration: `FERRY_CONFIG` (or
//! `FERRY_CONFIG_SECRET`) for credentials and defaults, `FERRY_COPY_QUEUE_URL`,
//! `FERRY_DEAD_LETTER_QUEUE_URL`, `FERRY_COPY_MAX_RECEIVES`.

use std::sync::Arc;

use ferry::aws::AwsClients;
use ferry::copy::Copier;
use ferry::handler::copier::CopierHandler;
use ferry::service::{self, env};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    service::init_function_logging();
    let aws = Arc::new(AwsClients::from_environment());
    let services = service::services_from_environment(aws.clone()).await?;
    let options = services.copy_options();
    let image_concurrency = options.image_concurrency;
    let copier = Copier::new(services.registry.clone(), options);
    let sqs = aws_sdk_sqs::Client::new(aws.config().await);
    let mut handler = CopierHandler::new(
        services,
        copier,
        sqs,
        std::env::var(env::COPY_QUEUE_URL).ok(),
        std::env::var(env::DEAD_LETTER_QUEUE_URL).ok(),
    );
    handler.concurrency = image_concurrency;
    handler.max_receives = service::max_receives_from_environment()?;
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handler.handle(event.payload).await.map_err(|e| {
            tracing::error!(error = %e, kind = e.kind(), "copier failed");
            Error::from(e.to_string())
        })
    }))
    .await
}
