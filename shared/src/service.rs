//! What a planner, a copier or `ferry sync` builds once from the configuration and keeps
//! for every invocation: the AWS clients, the credential store (with Secrets Manager and
//! ECR tokens cached inside), and one registry client whose connections and bearer tokens
//! are reused across images and warm invocations.

use std::sync::Arc;

use crate::auth::ecr::EcrTokenProvider;
use crate::auth::secrets_manager::{SecretsManagerSource, DEFAULT_TTL};
use crate::auth::{Credential, CredentialStore};
use crate::aws::AwsClients;
use crate::config::{CredentialSpec, SyncConfig};
use crate::copy::CopyOptions;
use crate::error::Result;
use crate::registry::{Endpoints, Limits, RegistryClient, RegistryOptions};

/// Environment variables the functions read, in one place.
pub mod env {
    /// The sync configuration itself (YAML or JSON).
    pub const CONFIG: &str = "FERRY_CONFIG";
    /// A Secrets Manager secret holding the configuration, for documents over Lambda's
    /// 4 KB environment limit. Read once per cold start.
    pub const CONFIG_SECRET: &str = "FERRY_CONFIG_SECRET";
    /// The account ferry runs in (`{account}` in templates); SAM sets it.
    pub const ACCOUNT_ID: &str = "FERRY_ACCOUNT_ID";
    /// `NAME=URL,…`: reach registry NAME at URL (tests, private endpoints).
    pub const REGISTRY_ENDPOINTS: &str = "FERRY_REGISTRY_ENDPOINTS";
    pub const COPY_QUEUE_URL: &str = "FERRY_COPY_QUEUE_URL";
    pub const PLAN_QUEUE_URL: &str = "FERRY_PLAN_QUEUE_URL";
    pub const DEAD_LETTER_QUEUE_URL: &str = "FERRY_DEAD_LETTER_QUEUE_URL";
    /// The copy queue's `maxReceiveCount` (its redrive policy), so the copier knows a
    /// record's last delivery.
    pub const COPY_MAX_RECEIVES: &str = "FERRY_COPY_MAX_RECEIVES";
    /// The planning queue's `maxReceiveCount`, for the planner likewise.
    pub const PLAN_MAX_RECEIVES: &str = "FERRY_PLAN_MAX_RECEIVES";
    /// How many copier invocations may run at once (the template's
    /// `CopierMaxConcurrency`): each paces to its share of a registry's configured rates.
    pub const FLEET_SIZE: &str = "FERRY_FLEET_SIZE";
}

pub struct Services {
    pub config: SyncConfig,
    pub aws: Arc<AwsClients>,
    pub registry: Arc<RegistryClient>,
}

impl Services {
    /// Build the clients for `config`. `endpoints` carries routes and insecure hosts from
    /// outside the file (flags, `FERRY_REGISTRY_ENDPOINTS`); the file's
    /// `insecure_registries` are added to it. With `local_auth_files`, the user's docker
    /// and containers auth files are consulted too (the CLI; not the functions).
    /// `fleet_size` processes share the registries' configured rates (1 for the CLI).
    pub async fn build(
        config: SyncConfig,
        aws: Arc<AwsClients>,
        mut endpoints: Endpoints,
        local_auth_files: bool,
        fleet_size: u32,
    ) -> Result<Services> {
        for host in &config.insecure_registries {
            endpoints = endpoints.insecure_host(host);
        }
        let mut store = if local_auth_files {
            CredentialStore::from_environment()?
        } else {
            CredentialStore::anonymous()
        };
        store.set_ecr(Some(Arc::new(EcrTokenProvider::with_clients(aws.clone()))));
        if config
            .credentials
            .iter()
            .any(|(_, c)| matches!(c, CredentialSpec::Secret(_)))
        {
            let client = aws_sdk_secretsmanager::Client::new(aws.config().await);
            store.set_secrets_source(Arc::new(SecretsManagerSource::new(client, DEFAULT_TTL)));
        }
        for (host, spec) in &config.credentials {
            match spec {
                CredentialSpec::Secret(id) => store.insert_secret(host, id),
                CredentialSpec::Anonymous => store.insert(host, Credential::Anonymous),
                CredentialSpec::Ecr => {}
            }
        }
        let mut options = RegistryOptions {
            endpoints,
            limits: Limits {
                registries: config.registries.clone(),
                fleet_size,
                ..Limits::default()
            },
            ..RegistryOptions::default()
        };
        if let Some(s) = config.defaults.throttle_patience_seconds {
            options.retry.throttle_patience = std::time::Duration::from_secs(s as u64);
        }
        if let Some(n) = config.defaults.request_attempts {
            options.retry.max_attempts = n.min(100) as u32;
        }
        if let Some(s) = config.defaults.read_timeout_seconds {
            options.read_timeout = std::time::Duration::from_secs(s as u64);
        }
        let registry = Arc::new(RegistryClient::new(options, store)?);
        Ok(Services {
            config,
            aws,
            registry,
        })
    }

    /// Copy settings from the configuration's `defaults`.
    pub fn copy_options(&self) -> CopyOptions {
        self.config.defaults.copy_options()
    }
}

/// The configuration a function was deployed with: `FERRY_CONFIG` inline, or the secret
/// `FERRY_CONFIG_SECRET` names; home account and region from the environment.
pub async fn config_from_environment(aws: &AwsClients) -> std::result::Result<SyncConfig, String> {
    let text = match (
        std::env::var(env::CONFIG).ok().filter(|s| !s.trim().is_empty()),
        std::env::var(env::CONFIG_SECRET).ok().filter(|s| !s.trim().is_empty()),
    ) {
        (Some(text), _) => text,
        (None, Some(secret)) => {
            let client = aws_sdk_secretsmanager::Client::new(aws.config().await);
            SecretsManagerSource::new(client, DEFAULT_TTL)
                .value(&secret)
                .await
                .map_err(|e| format!("reading the configuration: {e}"))?
                .expose()
                .to_string()
        }
        (None, None) => {
            return Err(format!(
                "no configuration: set {} to the sync configuration (YAML or JSON) or {} to a secret holding it",
                env::CONFIG,
                env::CONFIG_SECRET
            ))
        }
    };
    let config =
        SyncConfig::parse(&text).map_err(|e| format!("invalid sync configuration: {e}"))?;
    // The SDK configuration already read AWS_REGION (which Lambda sets).
    let region = aws.config().await.region().map(|r| r.to_string());
    Ok(config.with_home(std::env::var(env::ACCOUNT_ID).ok(), region))
}

/// Everything a function is deployed with, as values: the mains read it from the process
/// environment ([`FunctionSettings::from_environment`]), the test bed writes it down, and
/// both build their handlers from it the same way.
#[derive(Clone)]
pub struct FunctionSettings {
    /// With the home account and region filled in.
    pub config: SyncConfig,
    /// Registry routes (`FERRY_REGISTRY_ENDPOINTS`).
    pub endpoints: Endpoints,
    /// Processes sharing the registries' limits (`FERRY_FLEET_SIZE`).
    pub fleet_size: u32,
    pub copy_queue_url: Option<String>,
    pub plan_queue_url: Option<String>,
    pub dead_letter_queue_url: Option<String>,
    pub copy_max_receives: Option<u32>,
    pub plan_max_receives: Option<u32>,
    /// The copier prints CloudWatch metrics (EMF) on stdout after each batch; off where
    /// stdout is for people (the demo).
    pub emit_metrics: bool,
}

impl FunctionSettings {
    /// Read every setting from the process environment; the first bad one is named.
    pub async fn from_environment(aws: &AwsClients) -> std::result::Result<Self, String> {
        let url = |name: &str| std::env::var(name).ok().filter(|u| !u.trim().is_empty());
        Ok(FunctionSettings {
            config: config_from_environment(aws).await?,
            endpoints: endpoints_from_environment()?,
            fleet_size: fleet_size_from_environment()?,
            copy_queue_url: url(env::COPY_QUEUE_URL),
            plan_queue_url: url(env::PLAN_QUEUE_URL),
            dead_letter_queue_url: url(env::DEAD_LETTER_QUEUE_URL),
            copy_max_receives: max_receives_from(env::COPY_MAX_RECEIVES)?,
            plan_max_receives: max_receives_from(env::PLAN_MAX_RECEIVES)?,
            emit_metrics: true,
        })
    }

    /// The clients for these settings. Functions read no local auth files: their
    /// credentials come from the configuration, Secrets Manager and ECR.
    pub async fn services(&self, aws: Arc<AwsClients>) -> std::result::Result<Services, String> {
        Services::build(
            self.config.clone(),
            aws,
            self.endpoints.clone(),
            false,
            self.fleet_size,
        )
        .await
        .map_err(|e| e.to_string())
    }
}

/// JSON log lines without timestamps (CloudWatch stamps each line), level from `RUST_LOG`.
pub fn init_function_logging() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_current_span(false)
        .without_time()
        .init();
}

/// Registry routes from `FERRY_REGISTRY_ENDPOINTS`.
pub fn endpoints_from_environment() -> std::result::Result<Endpoints, String> {
    match std::env::var(env::REGISTRY_ENDPOINTS) {
        Ok(list) => Endpoints::new()
            .routes_from_list(&list)
            .map_err(|e| format!("{}: {e}", env::REGISTRY_ENDPOINTS)),
        Err(_) => Ok(Endpoints::new()),
    }
}

/// How many processes share the registries' limits, from `FERRY_FLEET_SIZE` (1 if unset).
pub fn fleet_size_from_environment() -> std::result::Result<u32, String> {
    parse_fleet_size(std::env::var(env::FLEET_SIZE).ok().as_deref())
}

fn parse_fleet_size(value: Option<&str>) -> std::result::Result<u32, String> {
    match value {
        None | Some("") => Ok(1),
        Some(text) => match text.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "{} must be a whole number of at least 1 (the copier's maximum concurrency), not {text:?}",
                env::FLEET_SIZE
            )),
        },
    }
}

/// A queue's `maxReceiveCount` from the environment variable `name`, if set.
fn max_receives_from(name: &str) -> std::result::Result<Option<u32>, String> {
    max_receives(name, std::env::var(name).ok().as_deref())
}

/// A queue's `maxReceiveCount` from the value of the variable `name`, if set.
fn max_receives(name: &str, value: Option<&str>) -> std::result::Result<Option<u32>, String> {
    match value {
        None | Some("") => Ok(None),
        Some(text) => match text.parse::<u32>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(format!(
                "{name} must be a whole number of at least 1 (the queue's maxReceiveCount), not {text:?}"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_size_defaults_to_one_and_is_checked() {
        assert_eq!(parse_fleet_size(None), Ok(1));
        assert_eq!(parse_fleet_size(Some("10")), Ok(10));
        for bad in ["ten", "0", "-2"] {
            let e = parse_fleet_size(Some(bad)).unwrap_err();
            assert!(e.contains("FERRY_FLEET_SIZE"), "{e}");
        }
    }

    #[test]
    fn max_receives_is_optional_and_checked() {
        let name = env::PLAN_MAX_RECEIVES;
        assert_eq!(max_receives(name, None), Ok(None));
        assert_eq!(max_receives(name, Some("")), Ok(None));
        assert_eq!(max_receives(name, Some("5")), Ok(Some(5)));
        for bad in ["five", "-1", "0"] {
            let e = max_receives(name, Some(bad)).unwrap_err();
            assert!(e.contains("FERRY_PLAN_MAX_RECEIVES"), "{e}");
        }
    }
}
