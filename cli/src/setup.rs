//! What the configuration-driven commands (plan, sync, verify) build before they start:
//! the configuration, the registry routes, and the same clients a Lambda builds.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ferry::auth::docker_config::AuthFile;
use ferry::auth::{Credential, CredentialStore};
use ferry::aws::AwsClients;
use ferry::config::SyncConfig;
use ferry::message::Reason;
use ferry::plan::{Plan, PlanOptions, Planner};
use ferry::reference::ImageRef;
use ferry::referrers::RegistryFacts;
use ferry::registry::{Endpoints, RegistryClient, RegistryOptions, RetryPolicy};
use ferry::service::Services;

use crate::args::{ConfigArgs, EndpointArgs};

impl EndpointArgs {
    pub fn endpoints(&self) -> Result<Endpoints> {
        let mut endpoints = Endpoints::new().insecure_loopback(self.insecure_loopback);
        for host in self.insecure_registries.iter().filter(|h| !h.is_empty()) {
            endpoints = endpoints.insecure_host(host);
        }
        for route in self.registry_endpoints.iter().filter(|r| !r.is_empty()) {
            endpoints = endpoints.routes_from_list(route)?;
        }
        Ok(endpoints)
    }
}

impl ConfigArgs {
    /// The configuration file, read and validated, with the home account and region filled
    /// in from flags or the environment.
    pub fn load(&self) -> Result<SyncConfig> {
        let Some(path) = &self.config else {
            bail!("no configuration: pass --config FILE (or set FERRY_CONFIG_FILE); see the README's \"Configuration\" for the format");
        };
        let config = SyncConfig::load(path)?;
        Ok(config.with_home(self.account.clone(), self.region.clone()))
    }

    /// The clients a Lambda would build for `config`, plus the user's docker and containers
    /// auth files (a person at a terminal has usually logged in with them).
    pub async fn services(&self, config: SyncConfig) -> Result<Services> {
        let aws = Arc::new(AwsClients::from_environment());
        let endpoints = self.endpoints.endpoints()?;
        Services::build(config, aws, endpoints, true, 1)
            .await
            .context("setting up registry access")
    }

    /// Load the configuration, build its clients, and plan the sources `--source` selects
    /// (all by default) with the planner's code.
    pub async fn plan(&self, options: PlanOptions) -> Result<(Services, Plan)> {
        let services = self.services(self.load()?).await?;
        let mut plan = Plan::default();
        self.plan_each(&services, options, Default::default(), |part| {
            plan.merge(part)
        })
        .await?;
        Ok((services, plan))
    }

    /// Plan the sources `--source` selects (all by default) with the planner's code,
    /// handing each repository's plan to `each` as soon as it is made. `facts` is what
    /// is known of the registries, shared with a copier in this process.
    pub async fn plan_each(
        &self,
        services: &Services,
        options: PlanOptions,
        facts: Arc<RegistryFacts>,
        mut each: impl FnMut(Plan),
    ) -> Result<()> {
        let sources = services
            .config
            .sources_named(&self.sources)
            .map_err(anyhow::Error::msg)?;
        let planner = Planner::new(&services.config, &services.registry, &services.aws, options)
            .with_facts(facts);
        for source in sources {
            planner
                .plan_source_each(source, Reason::Manual, &mut each)
                .await
                .with_context(|| format!("planning source {}", source.name))?;
        }
        Ok(())
    }
}

/// Credentials given on the command line, for commands that name images directly.
pub struct ExplicitCredentials<'a> {
    pub authfile: Option<&'a Path>,
    /// `USER:PASSWORD` for every source registry.
    pub src_creds: Option<&'a str>,
    /// `USER:PASSWORD` for every destination registry.
    pub dest_creds: Option<&'a str>,
}

/// A registry client for images named on the command line: the user's auth files and
/// credential helpers, then `--authfile`, then `--src-creds`/`--dest-creds` bound to the
/// registries of the sources and destinations only.
pub fn registry_client(
    endpoints: Endpoints,
    retries: u32,
    given: &ExplicitCredentials<'_>,
    sources: &[&ImageRef],
    destinations: &[&ImageRef],
) -> Result<RegistryClient> {
    let mut credentials = CredentialStore::from_environment()?;
    if let Some(path) = given.authfile {
        credentials.add_file(AuthFile::load(path)?);
    }
    if let Some(c) = given.src_creds {
        let credential = Credential::from_user_colon_password(c).context("--src-creds")?;
        for s in sources {
            credentials.insert(s.registry(), credential.clone());
        }
    }
    if let Some(c) = given.dest_creds {
        let credential = Credential::from_user_colon_password(c).context("--dest-creds")?;
        for d in destinations {
            if given.src_creds.is_some_and(|s| s != c)
                && sources.iter().any(|s| s.registry() == d.registry())
            {
                bail!("source and destination are both on {}: one registry takes one credential; use the same for --src-creds and --dest-creds", d.registry());
            }
            credentials.insert(d.registry(), credential.clone());
        }
    }
    let options = RegistryOptions {
        endpoints,
        retry: RetryPolicy {
            max_attempts: retries,
            ..RetryPolicy::default()
        },
        ..RegistryOptions::default()
    };
    Ok(RegistryClient::new(options, credentials)?)
}
