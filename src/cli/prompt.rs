//! Reading answers at the terminal: whole lines, optionally without echo, ended by Ctrl-C.
//!
//! Every prompt — the operator's token, a secret input, a confirmation, a typed resource name —
//! reads the same way, so a Ctrl-C ends any of them (the process counts SIGINT instead of dying
//! with a half-written transcript), and nothing typed before a prompt can answer it.

use std::io::Write;

use secrecy::SecretString;

use crate::exec::shared::Interrupt;

/// Throws away what was typed before the prompt appeared (type-ahead meant for an earlier one).
pub(super) fn discard_pending_input() {
    #[cfg(unix)]
    {
        let _ = rustix::termios::tcflush(std::io::stdin(), rustix::termios::QueueSelector::IFlush);
    }
}

/// Asks `question` on stderr and reads one line; empty means "not given". An `Interrupted`
/// error at Ctrl-C.
pub(super) fn ask_line(question: &str, interrupt: &Interrupt) -> std::io::Result<Option<String>> {
    let seen = interrupt.count();
    tokio::task::block_in_place(|| {
        discard_pending_input();
        let mut err = std::io::stderr().lock();
        write!(err, "{question}")?;
        err.flush()?;
        drop(err);
        let line = read_line(interrupt, seen)?;
        Ok(line.map(|l| l.trim().to_string()).filter(|l| !l.is_empty()))
    })
}

/// Asks `question` and reads one line with echo off; the answer is a secret from the first byte
/// kept. Empty means "not given". An `Interrupted` error at Ctrl-C (echo is restored either way).
pub(super) fn ask_hidden(
    question: &str,
    interrupt: &Interrupt,
) -> std::io::Result<Option<SecretString>> {
    let seen = interrupt.count();
    tokio::task::block_in_place(|| {
        discard_pending_input();
        let mut err = std::io::stderr().lock();
        write!(err, "{question}: ")?;
        err.flush()?;
        drop(err);
        let line = {
            let _echo = EchoOff::new();
            read_line(interrupt, seen)
        };
        // The Enter was not echoed.
        let _ = writeln!(std::io::stderr());
        let line = line?.map(SecretString::from);
        Ok(line.and_then(|l| {
            let t = secrecy::ExposeSecret::expose_secret(&l).trim_end_matches(['\r', '\n']);
            (!t.is_empty()).then(|| SecretString::from(t.to_string()))
        }))
    })
}

/// Turns terminal echo off until dropped (nothing happens when stdin is not a terminal).
struct EchoOff {
    #[cfg(unix)]
    saved: Option<rustix::termios::Termios>,
}

impl EchoOff {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
            let stdin = std::io::stdin();
            let saved = tcgetattr(&stdin).ok();
            if let Some(s) = &saved {
                let mut quiet = s.clone();
                quiet.local_modes.remove(LocalModes::ECHO);
                let _ = tcsetattr(&stdin, OptionalActions::Now, &quiet);
            }
            EchoOff { saved }
        }
        #[cfg(not(unix))]
        EchoOff {}
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(s) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                s,
            );
        }
    }
}

/// Reads one line from the terminal; `None` at end of input; an `Interrupted` error once Ctrl-C
/// has been pressed more than `seen` times — counted from before the question was shown, so a
/// Ctrl-C pressed as it appears is not missed.
///
/// The terminal is in canonical mode: it delivers whole lines, edits them, and turns Ctrl-C into
/// SIGINT, which the process counts. The read waits in short polls so that a Ctrl-C ends it, and
/// reads the descriptor directly: a buffered reader could keep a second typed line for the next
/// prompt.
#[cfg(unix)]
pub(super) fn read_line(interrupt: &Interrupt, seen: u32) -> std::io::Result<Option<String>> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let stdin = std::io::stdin();
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

/// What [`read_line_until`] ended with.
#[derive(Debug)]
pub(super) enum LineOr {
    /// A line (or what came before the end of input).
    Line(Option<String>),
    /// `done` became true first.
    Done,
}

/// Like [`read_line`], but gives up waiting as soon as `done` (asked about once a second) is
/// true: a prompt that something else can answer.
#[cfg(unix)]
pub(super) fn read_line_until(
    interrupt: &Interrupt,
    seen: u32,
    mut done: impl FnMut() -> bool,
) -> std::io::Result<LineOr> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let stdin = std::io::stdin();
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    let mut line = Vec::new();
    let mut ticks = 0u32;
    loop {
        if interrupt.count() > seen {
            return Err(interrupted());
        }
        let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
        match poll(&mut fds, Some(&tick)) {
            Ok(0) => {
                ticks += 1;
                if line.is_empty() && ticks.is_multiple_of(10) && done() {
                    return Ok(LineOr::Done);
                }
                continue;
            }
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
            let text = (!line.is_empty()).then(|| String::from_utf8_lossy(&line).into_owned());
            return Ok(LineOr::Line(text));
        }
        if buf[..n].contains(&0x03) {
            return Err(interrupted());
        }
        line.extend_from_slice(&buf[..n]);
        if line.ends_with(b"\n") {
            return Ok(LineOr::Line(Some(
                String::from_utf8_lossy(&line).into_owned(),
            )));
        }
    }
}

#[cfg(not(unix))]
pub(super) fn read_line_until(
    interrupt: &Interrupt,
    seen: u32,
    _done: impl FnMut() -> bool,
) -> std::io::Result<LineOr> {
    read_line(interrupt, seen).map(LineOr::Line)
}

#[cfg(not(unix))]
pub(super) fn read_line(interrupt: &Interrupt, seen: u32) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    let n = std::io::stdin().read_line(&mut line)?;
    if interrupt.count() > seen {
        return Err(interrupted());
    }
    Ok((n > 0).then_some(line))
}

fn interrupted() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::Interrupted, "Ctrl-C at the prompt")
}

/// Whether `e` is a Ctrl-C at a prompt.
pub(super) fn is_interrupt(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Interrupted
}
