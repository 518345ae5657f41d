//! The terminal confirmer: what will be sent, then a question answered by a whole line.
//!
//! People type `y` then Enter. A prompt that takes one key press leaves that Enter behind to
//! answer the next prompt — "no" to a containment step. So answers are lines (`y`/`yes` + Enter
//! approves; anything else declines), and input typed before a prompt appears is discarded before
//! it is asked, so nothing typed earlier can answer it. Ctrl-C at a prompt ends the run as
//! interrupted. While a prompt is up, progress bars are hidden and other output is held back.

use std::io::Write;
use std::sync::Arc;

use dialoguer::Password;
use dialoguer::console::Term;
use secrecy::SecretString;

use super::ui::{PromptGate, Styles};
use crate::exec::approval::{Confirmer, Prompt};
use crate::exec::shared::Interrupt;

/// Asks the operator at the terminal.
pub struct TerminalConfirmer {
    gate: Arc<PromptGate>,
    interrupt: Interrupt,
    styles: Styles,
}

impl TerminalConfirmer {
    /// A confirmer that holds `gate` while asking and stops asking at Ctrl-C.
    pub fn new(gate: Arc<PromptGate>, interrupt: Interrupt, styles: Styles) -> Self {
        TerminalConfirmer {
            gate,
            interrupt,
            styles,
        }
    }

    fn show(&self, p: &Prompt, err: &mut impl Write) -> std::io::Result<()> {
        let banner = if p.drill {
            self.styles
                .drill("DRILL — simulator, not production".to_string())
        } else {
            self.styles.live("LIVE — this changes ESUS".to_string())
        };
        writeln!(err, "\n── {banner} ── step `{}`: {}", p.step, p.name)?;
        let shown = p.requests.len().min(20);
        for r in &p.requests[..shown] {
            writeln!(
                err,
                "   {} {}",
                self.styles.destructive(r.method.clone()),
                r.url
            )?;
            for (k, v) in &r.headers {
                writeln!(err, "     {k}: {v}")?;
            }
            if let Some(b) = &r.body {
                writeln!(err, "     {b}")?;
            }
        }
        if p.total > shown {
            writeln!(
                err,
                "   … and {} more requests of the same shape ({} in all)",
                p.total - shown,
                p.total
            )?;
        }
        Ok(())
    }
}

impl Confirmer for TerminalConfirmer {
    fn confirm(&self, p: &Prompt) -> std::io::Result<bool> {
        self.gate.during(|| {
            let mut err = std::io::stderr().lock();
            self.show(p, &mut err)?;
            let prefix = if p.drill { "[DRILL] " } else { "" };
            let question = match &p.typed {
                Some(expected) => format!(
                    "{prefix}{} Type `{expected}` and Enter to confirm (anything else declines): ",
                    p.message
                ),
                None => format!("{prefix}{} [y/N] ", p.message),
            };
            discard_pending_input();
            write!(err, "{}", self.styles.bold(question))?;
            err.flush()?;
            drop(err);
            let line = read_line(&self.interrupt)?;
            let answer = line.as_deref().map(str::trim).unwrap_or_default();
            let approved = match &p.typed {
                Some(expected) => answer == expected,
                None => matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes"),
            };
            let mut err = std::io::stderr().lock();
            if line.is_none() {
                writeln!(err)?;
            }
            let word = if approved {
                self.styles.ok("approved".into())
            } else {
                self.styles.warn("declined".into())
            };
            writeln!(err, "   → {word}")?;
            Ok(approved)
        })
    }

    fn new_token(&self) -> Option<SecretString> {
        self.gate.during(|| {
            discard_pending_input();
            Password::new()
                .with_prompt(
                    "The ESUS token expired or was revoked. Paste a new access token (hidden)",
                )
                .allow_empty_password(true)
                .interact_on(&Term::stderr())
                .ok()
                .filter(|t| !t.trim().is_empty())
                .map(|t| SecretString::from(t.trim().to_string()))
        })
    }
}

/// Throws away what was typed before the prompt appeared (type-ahead meant for an earlier one).
fn discard_pending_input() {
    #[cfg(unix)]
    {
        let _ = rustix::termios::tcflush(std::io::stdin(), rustix::termios::QueueSelector::IFlush);
    }
}

/// Reads one line from the terminal; `None` at end of input; an `Interrupted` error at Ctrl-C.
///
/// The terminal is in canonical mode: it delivers whole lines, edits them, and turns Ctrl-C into
/// SIGINT, which the run counts. The read waits in short polls so that a Ctrl-C ends it, and reads
/// the descriptor directly: a buffered reader could keep a second typed line for the next prompt.
#[cfg(unix)]
fn read_line(interrupt: &Interrupt) -> std::io::Result<Option<String>> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let stdin = std::io::stdin();
    let seen = interrupt.count();
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    let mut line = Vec::new();
    loop {
        if interrupt.count() > seen {
            return Err(interrupted());
        }
        let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
        match poll(&mut fds, Some(&tick)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let mut buf = [0u8; 1024];
        let n = match rustix::io::read(&stdin, &mut buf) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Ok((!line.is_empty()).then(|| String::from_utf8_lossy(&line).into_owned()));
        }
        // Ctrl-C as a byte (a terminal not in canonical mode) is still Ctrl-C.
        if buf[..n].contains(&0x03) {
            return Err(interrupted());
        }
        line.extend_from_slice(&buf[..n]);
        if line.ends_with(b"\n") {
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
    }
}

#[cfg(not(unix))]
fn read_line(interrupt: &Interrupt) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    let n = std::io::stdin().read_line(&mut line)?;
    if interrupt.count() > 0 {
        return Err(interrupted());
    }
    Ok((n > 0).then_some(line))
}

fn interrupted() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::Interrupted, "Ctrl-C at the prompt")
}
