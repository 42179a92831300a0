//! A `moto_server` process: the AWS APIs ferry uses (ECR, SQS, Secrets Manager, EventBridge)
//! on a free loopback port, reached the way real code reaches a local endpoint, through
//! `AWS_ENDPOINT_URL`.
//!
//! moto's ECR has no registry data plane. Its `GetAuthorizationToken` answers user `AWS`,
//! password `<account>-auth-token`, so a test stands a `docker-registry` with exactly that
//! htpasswd user in for the ECR host ([`MotoServer::ecr_registry`]).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::registry::{Auth, DockerRegistry};

/// The account moto answers as when no credentials say otherwise.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

pub struct MotoServer {
    pub port: u16,
    child: Child,
    log: tempfile::NamedTempFile,
}

impl MotoServer {
    pub fn start() -> MotoServer {
        let port = crate::free_port();
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("log"))
            .spawn()
            .expect("start moto_server: install it with pip install 'moto[server]' (the README's test command does)");
        let mut server = MotoServer { port, child, log };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("moto_server exited with {status}: {}", self.log());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("moto_server did not listen within 60s: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The server's process id (to read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Environment for a child process (the `ferry` CLI, a Lambda under cargo-lambda) to
    /// talk to this server with throwaway credentials.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// An SDK configuration for this server, built without touching the process
    /// environment (tests run in parallel threads).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        Self::sdk_config_at(&self.endpoint()).await
    }

    /// The same configuration, reaching moto through `endpoint` (a proxy in front of it).
    pub async fn sdk_config_at(endpoint: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_credential_types::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "ferry-tests",
            ))
            .load()
            .await
    }

    /// The ECR registry host of moto's default account in `region`.
    pub fn ecr_host(region: &str) -> String {
        ferry::ecr_host::EcrHost::new(ACCOUNT, region).to_string()
    }

    /// A `docker-registry` that accepts moto's ECR credentials, to stand in for the ECR
    /// registry data plane.
    pub fn ecr_registry() -> DockerRegistry {
        DockerRegistry::start(Auth::Basic {
            username: "AWS".into(),
            password: format!("{ACCOUNT}-auth-token"),
        })
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
