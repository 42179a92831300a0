//! ferry's engine: everything that can run without AWS Lambda.
//!
//! - [`reference`], [`digest`], [`manifest`]: the types copied images are described with;
//! - [`auth`]: where credentials come from, bound to the registry they are for;
//! - [`registry`]: the distribution API client;
//! - [`copy`]: the byte-exact, streaming copy engine and its [`report`].

pub mod auth;
pub mod aws;
pub mod backup;
pub mod batch;
pub mod config;
pub mod copy;
pub mod dead_letters;
pub mod digest;
pub mod ecr_host;
pub mod error;
pub mod event;
pub mod expiry;
pub mod filter;
pub mod handler;
pub mod jobs;
pub mod manifest;
pub mod mapping;
pub mod message;
pub mod plan;
pub mod queue;
pub mod reference;
pub mod referrers;
pub mod registry;
pub mod remove;
pub mod report;
pub mod service;
pub mod shared_answers;
pub mod status;
pub mod verify;

pub use error::{Error, Result};
