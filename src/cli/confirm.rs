//! The terminal confirmer: dialoguer prompts on stderr, default No, one at a time, with progress
//! bars suspended while a prompt is up.

use std::io::Write;
use std::sync::Mutex;

use dialoguer::console::Term;
use dialoguer::{Confirm, Input, Password};
use indicatif::MultiProgress;
use secrecy::SecretString;

use crate::exec::approval::{Confirmer, Prompt};

/// Asks the operator at the terminal.
pub struct TerminalConfirmer {
    multi: Option<MultiProgress>,
    one_at_a_time: Mutex<()>,
}

impl TerminalConfirmer {
    /// A confirmer that suspends `multi`'s bars while asking.
    pub fn new(multi: Option<MultiProgress>) -> Self {
        TerminalConfirmer {
            multi,
            one_at_a_time: Mutex::new(()),
        }
    }

    fn suspended<R>(&self, f: impl FnOnce() -> R) -> R {
        let _one = self.one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
        match &self.multi {
            Some(m) => m.suspend(f),
            None => f(),
        }
    }
}

impl Confirmer for TerminalConfirmer {
    fn confirm(&self, p: &Prompt) -> std::io::Result<bool> {
        self.suspended(|| {
            let term = Term::stderr();
            let mut err = std::io::stderr().lock();
            let banner = if p.drill {
                "DRILL — simulator, not production"
            } else {
                "LIVE — this changes ESUS"
            };
            writeln!(err, "\n── {banner} ── step `{}`: {}", p.step, p.name)?;
            let shown = p.requests.len().min(20);
            for r in &p.requests[..shown] {
                writeln!(err, "   {} {}", r.method, r.url)?;
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
            drop(err);
            let prefix = if p.drill { "[DRILL] " } else { "" };
            match &p.typed {
                Some(expected) => {
                    let typed: String = Input::new()
                        .with_prompt(format!(
                            "{prefix}{} Type `{expected}` to confirm (anything else declines)",
                            p.message
                        ))
                        .allow_empty(true)
                        .interact_text_on(&term)
                        .map_err(std::io::Error::other)?;
                    Ok(typed.trim() == expected)
                }
                None => Confirm::new()
                    .with_prompt(format!("{prefix}{}", p.message))
                    .default(false)
                    .interact_on(&term)
                    .map_err(std::io::Error::other),
            }
        })
    }

    fn new_token(&self) -> Option<SecretString> {
        self.suspended(|| {
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
