//! `esus-ir keygen`, `verify` and `report`: the transcript's commands (owned by issue 5's work).

use crate::error::{Error, ExitCode};

/// Arguments of `esus-ir keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {}

/// Arguments of `esus-ir verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {}

/// Arguments of `esus-ir report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {}

/// Runs `esus-ir keygen`.
pub fn keygen(_args: KeygenArgs) -> Result<ExitCode, Error> {
    Err(Error::Usage("`keygen` is not built yet (issue 5)".into()))
}

/// Runs `esus-ir verify`.
pub fn verify(_args: VerifyArgs) -> Result<ExitCode, Error> {
    Err(Error::Usage("`verify` is not built yet (issue 5)".into()))
}

/// Runs `esus-ir report`.
pub fn report(_args: ReportArgs) -> Result<ExitCode, Error> {
    Err(Error::Usage("`report` is not built yet (issue 5)".into()))
}
