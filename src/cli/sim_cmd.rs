//! `esus-ir sim`: the simulator as a foreground server (owned by the simulator work, issue 3).

use crate::error::{Error, ExitCode};

/// Arguments of `esus-ir sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {}

/// Runs `esus-ir sim`.
pub fn run(_args: SimArgs) -> Result<ExitCode, Error> {
    Err(Error::Usage("`sim` is not built yet (issue 3)".into()))
}
