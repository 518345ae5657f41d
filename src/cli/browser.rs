//! Opening the SMART authorization URL for the operator. No crate for this is vetted here
//! (/work/shared/CRATES.md), and the platform's own opener does the job: `xdg-open`, `open`, or
//! `rundll32 url.dll,FileProtocolHandler` (never `cmd`, which would run what follows a `&`). The URL holds no secret (the PKCE challenge, not the verifier), so handing it to
//! another process is safe; it is printed on stderr in any case.

use crate::exec::smart_login::Browser;

/// The platform's opener, started and left to run (its exit is not awaited: some openers stay
/// until the browser closes).
#[derive(Debug, Default)]
pub(super) struct SystemBrowser;

impl Browser for SystemBrowser {
    fn open(&self, url: &str) -> Result<(), String> {
        let mut cmd = if cfg!(target_os = "macos") {
            std::process::Command::new("open")
        } else if cfg!(windows) {
            // Not `cmd /C start`: cmd would read the URL's `&` as a command separator, and the
            // authorization endpoint's query is the server's to write.
            let mut c = std::process::Command::new("rundll32");
            c.arg("url.dll,FileProtocolHandler");
            c
        } else {
            if std::env::var_os("DISPLAY").is_none()
                && std::env::var_os("WAYLAND_DISPLAY").is_none()
            {
                return Err("no graphical session".into());
            }
            std::process::Command::new("xdg-open")
        };
        cmd.arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map(drop)
            .map_err(|e| format!("{e}"))
    }
}

/// `--no-browser` (or ESUS_IR_NO_BROWSER): only the printed URL.
#[derive(Debug, Default)]
pub(super) struct NoBrowser;

impl Browser for NoBrowser {
    fn open(&self, _url: &str) -> Result<(), String> {
        Err("--no-browser was given".into())
    }
}
