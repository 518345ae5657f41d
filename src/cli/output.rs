//! Where the CLI's words go: stdout (a closed pipe is not an error) and whether stderr may be
//! coloured. Below every command, so the commands and their dispatcher need not import each other.

use std::io::{IsTerminal, Write};

use crate::error::Error;

/// Whether diagnostics on stderr may use colour.
pub(super) fn stderr_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// `n` with its noun in the right number: "1 input", "3 steps", "0 problems".
pub(super) fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
pub(super) fn out(text: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("writing to stdout", e))
        }
        _ => Ok(()),
    }
}
