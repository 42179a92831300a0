//! A `docker-registry` process with its own storage, config and port.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::token::TokenServer;

pub const BINARY: &str = "/usr/bin/docker-registry";

/// distribution refuses foreign-layer URLs unless an allow-list is configured; public
/// registries (Docker Hub for Windows images) accept them, so the test registries do too.
const VALIDATION: &str =
    "validation:\n  manifests:\n    urls:\n      allow:\n        - ^https?://\n";

pub enum Auth {
    None,
    /// htpasswd basic auth with one user.
    Basic {
        username: String,
        password: String,
    },
    /// Bearer tokens from this token server.
    Token(std::sync::Arc<TokenServer>),
}

pub struct DockerRegistry {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
    pub auth: Auth,
}

impl DockerRegistry {
    pub fn start(auth: Auth) -> Self {
        Self::start_with(auth, false, None, true)
    }

    /// A registry with deletes switched off, as distribution ships by default
    /// (`storage.delete.enabled: false`): every DELETE is answered 405 `UNSUPPORTED`.
    pub fn start_refusing_deletes(auth: Auth) -> Self {
        Self::start_with(auth, false, None, false)
    }

    /// A registry whose storage lives under `parent` (say a tmpfs, so that the disk's fsync
    /// after every blob does not dominate a measurement).
    pub fn start_under(parent: &std::path::Path, auth: Auth) -> Self {
        Self::start_with(auth, false, Some(parent), true)
    }

    /// A registry that serves HTTPS only, with a certificate for 127.0.0.1 issued by a
    /// throwaway CA whose PEM is at [`DockerRegistry::ca_file`].
    pub fn start_tls(auth: Auth) -> Self {
        Self::start_with(auth, true, None, true)
    }

    /// The CA that issued a TLS registry's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn start_with(auth: Auth, tls: bool, parent: Option<&std::path::Path>, deletes: bool) -> Self {
        assert!(
            std::path::Path::new(BINARY).exists(),
            "{BINARY} is missing: install the Debian package docker-registry (the README's test command does)"
        );
        let dir = match parent {
            Some(p) => tempfile::tempdir_in(p),
            None => tempfile::tempdir(),
        }
        .expect("temp dir");
        let port = crate::free_port();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let auth_yaml = match &auth {
            Auth::None => String::new(),
            Auth::Basic { username, password } => {
                let hash = bcrypt::hash(password, 5).expect("bcrypt");
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, format!("{username}:{hash}\n")).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: ferry-test\n    path: {}\n",
                    path.display()
                )
            }
            Auth::Token(server) => {
                let cert = dir.path().join("token-ca.pem");
                std::fs::write(&cert, &server.cert_pem).unwrap();
                format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    server.realm(),
                    crate::token::SERVICE,
                    crate::token::ISSUER,
                    cert.display()
                )
            }
        };
        let tls_yaml = if tls {
            let (cert, key) = issue_certificate(dir.path());
            format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            )
        } else {
            String::new()
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: {deletes}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: ferry-test-secret\n{tls_yaml}{VALIDATION}{auth_yaml}",
            storage.display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::File::create(&config_path)
            .unwrap()
            .write_all(config.as_bytes())
            .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut registry = DockerRegistry {
            port,
            child,
            dir,
            auth,
        };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("docker-registry exited with {status}: {}", self.log());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "docker-registry did not listen on {} within 20s: {}",
            self.port,
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// `127.0.0.1:PORT`, the registry's name in references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The registry process, for measuring what it spends.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A seeder with full access to this registry.
    pub fn seeder(&self) -> crate::Seeder {
        let auth = match &self.auth {
            Auth::None => crate::fixtures::SeedAuth::None,
            Auth::Basic { username, password } => crate::fixtures::SeedAuth::Header(format!(
                "Basic {}",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    format!("{username}:{password}")
                )
            )),
            Auth::Token(server) => crate::fixtures::SeedAuth::Token(server.clone()),
        };
        crate::Seeder::new(self.url(), auth)
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA (written to `dir/ca.pem`) and a server certificate for 127.0.0.1 it issued;
/// returns the certificate and key files for the registry.
fn issue_certificate(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ferry test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("server key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    let cert = params.signed_by(&key, &ca).expect("server certificate");
    let (cert_file, key_file) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (cert_file, key_file)
}
