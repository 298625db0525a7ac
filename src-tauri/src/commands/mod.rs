//! IPC commands, a few lines each: take the arguments, call [`crate::core::Core`], map the
//! error (it crosses as `{kind, message}`). Each is declared in `build.rs` and granted in
//! `capabilities/main.json`.

pub mod call;
pub mod contacts;
pub mod devices;
pub mod history;
pub mod session;

/// Every command result.
pub type CmdResult<T> = Result<T, crate::error::AppError>;
