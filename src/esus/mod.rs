//! The ESUS side of esus-ir: the catalogue of built-in actions (pure data, used by validation
//! and planning) and the HTTP client that sends them.

pub mod actions;
pub mod client;
pub mod errors;
pub mod paths;
pub mod permissions;
pub mod request;
