//! The terminal confirmer: what will be sent, then a question answered by a whole line.
//!
//! People type `y` then Enter. A prompt that takes one key press leaves that Enter behind to
//! answer the next prompt — "no" to a containment step. So answers are lines (`y`/`yes` + Enter
//! approves; anything else declines), and input typed before a prompt appears is discarded before
//! it is asked, so nothing typed earlier can answer it. Ctrl-C at a prompt ends the run as
//! interrupted. While a prompt is up, progress bars are hidden and other output is held back.

use std::io::Write;
use std::sync::Arc;

use secrecy::SecretString;

use super::prompt::{ask_hidden, discard_pending_input, read_line};
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
        let seen = self.interrupt.count();
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
            let question = self.styles.bold(question);
            write!(err, "{question}")?;
            err.flush()?;
            drop(err);
            let line = self
                .gate
                .asking(&question, || read_line(&self.interrupt, seen))?;
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
            ask_hidden(
                "The ESUS token expired or was revoked. Paste a new access token (hidden)",
                &self.interrupt,
            )
            .ok()
            .flatten()
            .map(|t| {
                SecretString::from(secrecy::ExposeSecret::expose_secret(&t).trim().to_string())
            })
        })
    }
}
