//! `esus-ir completions SHELL` and `esus-ir man`: what a packaged CLI ships beside the binary,
//! generated from the same clap grammar as `--help`, so they never disagree with it.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::args::{Cli, CompletionsArgs, ManArgs};
use super::output::out;
use crate::error::{Error, ExitCode};

/// The command tree as clap builds it, named as installed.
fn command() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

/// Runs `esus-ir completions`.
pub(super) fn completions(args: CompletionsArgs) -> Result<ExitCode, Error> {
    let mut cmd = command();
    let name = cmd.get_name().to_string();
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, name, &mut buf);
    out(&String::from_utf8_lossy(&buf))?;
    Ok(ExitCode::Success)
}

/// Runs `esus-ir man`.
pub(super) fn man(args: ManArgs) -> Result<ExitCode, Error> {
    // Without clap's generated `help` subcommand, which would otherwise get a page of its own
    // and one more per command (`esus-ir-help-run.1`, …), each a copy of a real page's summary.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    match args.output {
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut buf)
                .map_err(|e| Error::io("rendering the man page", e))?;
            out(&String::from_utf8_lossy(&buf))?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            let mut written = Vec::new();
            write_pages(cmd, &dir, &mut written)?;
            written.sort();
            for path in &written {
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(ExitCode::Success)
}

/// Writes the page of `cmd` and of each visible subcommand, recursively.
fn write_pages(cmd: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<(), Error> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
        write_pages(sub, dir, written)?;
    }
    let page = clap_mangen::Man::new(cmd);
    let path = dir.join(page.get_filename());
    let mut buf = Vec::new();
    page.render(&mut buf)
        .map_err(|e| Error::io(format!("rendering {}", path.display()), e))?;
    std::fs::write(&path, buf).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    written.push(path);
    Ok(())
}
