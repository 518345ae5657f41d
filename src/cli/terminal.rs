//! What the terminal allows: colour (`--color`, NO_COLOR, whether stderr/stdout are terminals),
//! `--quiet`, whether a person is there to be asked — and the Ctrl-C listener, so that every
//! command reads these the same way.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::ui::Styles;
use crate::error::Error;
use crate::exec::shared::InterruptHandle;

/// `--color`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless NO_COLOR is set.
    #[default]
    Auto,
    /// Always colour (e.g. piped into `less -R`).
    Always,
    /// Never colour.
    Never,
}

/// The global terminal options.
#[derive(Debug, Clone, Copy, Default)]
pub struct Terminal {
    /// `--color`.
    pub color: ColorChoice,
    /// `--quiet`: no progress, only the result and errors.
    pub quiet: bool,
}

impl Terminal {
    fn colour_for(&self, is_terminal: bool) -> bool {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        match self.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => is_terminal && !no_color,
        }
    }

    /// Colours for what goes to stderr (progress, prompts, diagnostics).
    pub fn stderr_styles(&self) -> Styles {
        Styles::new(self.colour_for(std::io::stderr().is_terminal()))
    }

    /// Colours for what goes to stdout (the summary).
    pub fn stdout_styles(&self) -> Styles {
        Styles::new(self.colour_for(std::io::stdout().is_terminal()))
    }

    /// Whether progress may be drawn with spinners and bars (a terminal, colour allowed).
    pub fn fancy(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal() && self.stderr_styles().enabled()
    }
}

/// Whether a person is at the terminal to be asked (stdin and stderr are terminals).
pub fn interactive(non_interactive: bool) -> bool {
    !non_interactive && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The Ctrl-C listener of one command.
pub struct CtrlC {
    task: tokio::task::JoinHandle<()>,
    running: Arc<AtomicBool>,
}

impl CtrlC {
    /// From here on requests may be in flight: a Ctrl-C lets them finish, a second aborts them.
    pub fn run_started(&self) {
        self.running.store(true, Ordering::SeqCst);
    }

    /// Stops listening.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for CtrlC {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counts Ctrl-C presses into `handle`. The handler is installed before this returns (not when a
/// spawned task first runs), and before the first prompt, so a Ctrl-C at any prompt — the token,
/// an input, a confirmation — is counted instead of killing the process.
pub fn ctrl_c_listener(handle: InterruptHandle) -> Result<CtrlC, Error> {
    #[cfg(unix)]
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| Error::io("listening for Ctrl-C", e))?;
    let running = Arc::new(AtomicBool::new(false));
    let started = running.clone();
    let task = tokio::spawn(async move {
        for n in 1.. {
            #[cfg(unix)]
            let pressed = sigint.recv().await.is_some();
            #[cfg(not(unix))]
            let pressed = tokio::signal::ctrl_c().await.is_ok();
            if !pressed {
                return;
            }
            handle.fire();
            if n == 1 && started.load(Ordering::SeqCst) {
                eprintln!(
                    "\nCtrl-C: the requests in flight finish, nothing new starts. Press Ctrl-C again to abort them now."
                );
            }
        }
    });
    Ok(CtrlC { task, running })
}
