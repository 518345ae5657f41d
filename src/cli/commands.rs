//! One function per subcommand: arguments in, exit code out.

use super::args::Command;
use crate::error::{Error, ExitCode};

/// Runs the chosen subcommand.
pub(super) fn dispatch(command: Command) -> Result<ExitCode, Error> {
    match command {
        Command::Sim(args) => super::sim_cmd::run(args),
        Command::Keygen(args) => super::transcript_cmd::keygen(args),
        Command::Verify(args) => super::transcript_cmd::verify(args),
        Command::Report(args) => super::transcript_cmd::report(args),
        _ => Err(Error::Usage("not built yet".into())),
    }
}
