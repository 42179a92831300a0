//! ferry's test bed: real `docker-registry` (CNCF distribution) processes on free loopback
//! ports, in the three authentication flavours registries use (none, htpasswd basic, bearer
//! token from a token server), and helpers that seed them with images over the distribution
//! API; a `moto_server` for the AWS APIs; and a fault-injecting proxy to put in front of
//! a registry. Everything started here stops when its handle is dropped.

pub mod cargo;
pub mod clients;
pub mod fixtures;
pub mod moto;
pub mod pipeline;
pub mod production;
pub mod proxy;
pub mod registry;
pub mod sqs;
pub mod token;

pub use fixtures::{Blob, Seeder};
pub use registry::{Auth, DockerRegistry};

/// Serve `app` on `listener` in the current runtime until `shutdown` fires or is dropped
/// (the in-process servers stop with the handle that holds its sender). Each request knows
/// the address of the connection it came on (`ConnectInfo`), for a proxy that treats a
/// connection's first request apart.
pub fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    use axum::serve::ListenerExt;
    // Without TCP_NODELAY a response whose head and body go out in separate writes waits
    // for the client's delayed ACK: ~40 ms a request, which would dominate every test.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = shutdown.await;
        })
        .await
        .ok();
    });
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
