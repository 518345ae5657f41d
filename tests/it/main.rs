//! The one integration-test binary: a module per feature.

mod cli;
mod validate;
mod validate_fuzz;
