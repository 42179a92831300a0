//! ferry's integration tests, one binary: every module drives the real engine against the
//! test bed's registries, proxies and moto_server (see the crate's library for those).
//! One binary links the AWS SDKs once instead of once per file; `cargo test -p
//! ferry-testbed --test it MODULE::` runs one module.

mod bad_answers;
mod copy_behaviour;
mod copy_manifests;
mod delivery;
mod deployment;
mod events;
mod lambda_binaries;
mod load;
mod network_faults;
mod pipeline;
mod planning;
mod prune;
mod referrers;
mod registry_faults;
