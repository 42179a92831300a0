//! The two functions' handlers, built from [`crate::service::FunctionSettings`] so that the
//! Lambda `main.rs` files and the test bed build them the same way; each SQS batch is
//! handled by [`crate::batch`].

pub mod copier;
pub mod metrics;
pub mod planner;
