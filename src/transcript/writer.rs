//! The transcript writer: an [`EventSink`] that turns the executor's events into chained records.
//!
//! Each event becomes one line, written and flushed before `emit` returns (and fsynced at step
//! boundaries), so a killed process leaves a valid prefix. After each record that ends a unit of
//! work or may precede a prompt, after a fan-out item when 200 ms have passed, and at least every
//! [`checkpoint::EVERY`] records, the writer appends a `checkpoint` signed with the run's key, so
//! that prefix is signed too. [`TranscriptWriter::finish`] closes the
//! transcript — adding a `run-finished` record if the run never emitted one — and writes the
//! detached SSHSIG signature `<transcript>.sig`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::TranscriptError;
use super::checkpoint;
use super::fsutil::{create_private_dir_all, create_private_file, write_private_atomic};
use super::read::read_transcript;
use super::record::{GENESIS_PREV, Record};
use super::sign::Signer;
use crate::event::{Event, EventSink, RunOutcome};

/// A source of timestamps, replaceable so tests get stable transcripts.
pub type Clock = Box<dyn Fn() -> Timestamp + Send + Sync>;

/// Writes a transcript as the run happens and signs it at the end.
pub struct TranscriptWriter {
    path: PathBuf,
    signer: Signer,
    clock: Clock,
    state: Mutex<State>,
    /// A kill point for the reliability suite (`ESUS_IR_KILL_AFTER_RECORDS=N`): once N lines are
    /// on disk the process SIGKILLs itself, so a test can stop a run at every record boundary
    /// exactly, where a kill from outside lands wherever the scheduler happens to be.
    kill_after: Option<u64>,
}

/// The variable that sets [`TranscriptWriter`]'s kill point (tests only; documented in
/// docs/reliability.md).
pub const KILL_AFTER_VAR: &str = "ESUS_IR_KILL_AFTER_RECORDS";

struct State {
    file: File,
    next_seq: u64,
    prev: String,
    /// The hash of record 0, which names the run in every checkpoint.
    run_id: Option<String>,
    /// Records appended since the last checkpoint, and when it was signed.
    since_checkpoint: u64,
    last_checkpoint: std::time::Instant,
    run_finished: bool,
    signed: bool,
    /// A write failed part-way: appending more would follow a partial line, so stop.
    broken: bool,
}

impl std::fmt::Debug for TranscriptWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TranscriptWriter")
            .field("path", &self.path)
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl TranscriptWriter {
    /// Creates a new transcript at `path` (mode 0600; missing folders are created 0700). Fails if
    /// the file exists: a transcript is never overwritten.
    pub fn create(path: impl Into<PathBuf>, signer: Signer) -> Result<Self, TranscriptError> {
        let path = path.into();
        if let Some(parent) = path.parent() {
            create_private_dir_all(parent).map_err(|e| {
                TranscriptError::io(format!("creating folder {}", parent.display()), e)
            })?;
        }
        let file = create_private_file(&path)
            .map_err(|e| TranscriptError::io(format!("creating {}", path.display()), e))?;
        Ok(Self::with_state(
            path,
            signer,
            file,
            (0, GENESIS_PREV.into(), None),
            false,
        ))
    }

    /// Reopens an unfinished transcript (a killed run) to close it: its records must chain
    /// correctly. The caller then typically calls [`finish`](Self::finish), which appends a
    /// `run-finished` record with outcome `interrupted` and signs the file.
    pub fn reopen(path: impl Into<PathBuf>, signer: Signer) -> Result<Self, TranscriptError> {
        let path = path.into();
        let records = read_transcript(&path)?;
        let Some(last) = records.last() else {
            return Err(TranscriptError::Sequence(format!(
                "{} has no records to continue",
                path.display()
            )));
        };
        let finished = last.kind == "run-finished";
        let run_id = records.first().map(|r| r.hash.clone());
        let (next_seq, prev) = (last.seq + 1, last.hash.clone());
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| TranscriptError::io(format!("opening {}", path.display()), e))?;
        Ok(Self::with_state(
            path,
            signer,
            file,
            (next_seq, prev, run_id),
            finished,
        ))
    }

    fn with_state(
        path: PathBuf,
        signer: Signer,
        file: File,
        (next_seq, prev, run_id): (u64, String, Option<String>),
        run_finished: bool,
    ) -> Self {
        TranscriptWriter {
            path,
            signer,
            clock: Box::new(Timestamp::now),
            state: Mutex::new(State {
                file,
                next_seq,
                prev,
                run_id,
                since_checkpoint: 0,
                last_checkpoint: std::time::Instant::now(),
                run_finished,
                signed: false,
                broken: false,
            }),
            kill_after: std::env::var(KILL_AFTER_VAR)
                .ok()
                .and_then(|n| n.parse().ok()),
        }
    }

    /// Replaces the clock (tests use a fixed or stepping clock).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The transcript's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The detached signature's path: `<transcript>.sig`.
    pub fn signature_path(&self) -> PathBuf {
        signature_path(&self.path)
    }

    /// Closes the transcript and writes `<transcript>.sig`. If no `run-finished` event was emitted
    /// (the run ended abnormally), first appends one with outcome `interrupted` (exit code 130) and
    /// a `note`. Idempotent: later calls return the signature path again.
    pub fn finish(&self) -> Result<PathBuf, TranscriptError> {
        let mut state = self.lock();
        if state.broken {
            return Err(TranscriptError::Sequence(format!(
                "writing {} failed earlier; it is left unsigned",
                self.path.display()
            )));
        }
        if !state.signed {
            if !state.run_finished {
                let event = Event::RunFinished {
                    outcome: RunOutcome::Interrupted,
                    exit_code: 130,
                };
                let note =
                    "the run ended without a run-finished event; the transcript writer closed it";
                self.append(&mut state, &event, Some(note)).map_err(|e| {
                    TranscriptError::io(format!("writing {}", self.path.display()), e)
                })?;
            }
            self.sign_file()?;
            state.signed = true;
        }
        Ok(self.signature_path())
    }

    fn sign_file(&self) -> Result<(), TranscriptError> {
        // Sign the bytes as they are on disk: exactly what a verifier will read.
        let bytes = std::fs::read(&self.path)
            .map_err(|e| TranscriptError::io(format!("reading {}", self.path.display()), e))?;
        let armored = self.signer.sign(&bytes)?;
        let sig_path = self.signature_path();
        write_private_atomic(&sig_path, armored.as_bytes())
            .map_err(|e| TranscriptError::io(format!("writing {}", sig_path.display()), e))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves State consistent (seq and prev are updated only
        // after a line is written), so a poisoned lock is safe to keep using.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append(&self, state: &mut State, event: &Event, note: Option<&str>) -> io::Result<()> {
        let (kind, data) = event_parts(event)?;
        self.append_parts(state, kind, data, None, note)
    }

    /// Appends one record; `canon` is `data` already in canonical form, when the caller could
    /// compute it outside the lock (events whose data the writer does not extend).
    fn append_parts(
        &self,
        state: &mut State,
        kind: String,
        mut data: Map<String, Value>,
        canon: Option<String>,
        note: Option<&str>,
    ) -> io::Result<()> {
        let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
        if state.broken {
            return Err(io::Error::other(
                "an earlier write to the transcript failed",
            ));
        }
        if state.signed || state.run_finished {
            return Err(invalid("the transcript is already finished".into()));
        }
        match (state.next_seq, kind.as_str()) {
            (0, "run-started") => {
                data.insert("tool_version".into(), env!("CARGO_PKG_VERSION").into());
                data.insert("signer".into(), self.signer.public_key_openssh().into());
            }
            (0, other) => {
                return Err(invalid(format!(
                    "first event must be run-started, got {other}"
                )));
            }
            (_, "run-started") => return Err(invalid("run-started emitted twice".into())),
            (_, checkpoint::KIND) => {
                return Err(invalid("only the writer makes checkpoints".into()));
            }
            (seq, "run-finished") => {
                data.insert("events".into(), Value::from(seq + 1));
                data.insert("head".into(), Value::from(state.prev.clone()));
            }
            _ => {}
        }
        if let Some(note) = note {
            data.insert("note".into(), note.into());
        }
        let ts = format!("{:.3}", (self.clock)());
        let canon = match canon {
            Some(c) if note.is_none() => c,
            _ => canonical_string(&data),
        };
        let (record, mut line) =
            Record::sealed(state.next_seq, ts, kind, data, &canon, state.prev.clone());
        line.push('\n');
        let durable = matches!(
            record.kind.as_str(),
            "run-started" | "confirmation" | "step-finished" | "run-finished"
        );
        let sign = record.kind != "run-finished"
            && (checkpoint::after(&record.kind)
                || state.since_checkpoint + 1 >= checkpoint::EVERY
                || (record.kind == "item-finished"
                    && state.last_checkpoint.elapsed() >= checkpoint::ITEM_INTERVAL));
        // The checkpoint is signed before anything is written, and both lines go out in one
        // write: a record that needs a checkpoint is never on disk without it.
        let signed = if sign {
            Some(self.checkpoint_for(state, &record)?)
        } else {
            None
        };
        if let Some((_, cp_line)) = &signed {
            line.push_str(cp_line);
        }
        let written = state
            .file
            .write_all(line.as_bytes())
            .and_then(|()| state.file.flush());
        if let Err(e) = written {
            state.broken = true;
            return Err(e);
        }
        advance(state, &record);
        if let Some((cp, _)) = &signed {
            advance(state, cp);
        }
        if durable {
            // One sync for the record and the checkpoint that signs it.
            state
                .file
                .sync_data()
                .inspect_err(|_| state.broken = true)?;
        }
        if self.kill_after.is_some_and(|n| state.next_seq >= n) {
            let _ = state.file.sync_data();
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
        }
        Ok(())
    }

    /// The checkpoint that follows `record` (not yet written): the run's key signs the chain
    /// head, the seq and the run id, so everything up to `record` is signed even if the run never
    /// reaches its final signature. It carries `record`'s time (the clock is not read again).
    fn checkpoint_for(&self, state: &State, record: &Record) -> io::Result<(Record, String)> {
        let run_id = if record.seq == 0 {
            record.hash.clone()
        } else {
            state.run_id.clone().unwrap_or_default()
        };
        let covers = record.seq + 1;
        let message = checkpoint::message(covers, &record.hash, &run_id);
        let signature = self
            .signer
            .sign(&message)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let data = checkpoint::data(covers, &record.hash, &run_id, signature);
        let canon = canonical_string(&data);
        let (cp, mut line) = Record::sealed(
            covers,
            record.ts.clone(),
            checkpoint::KIND.into(),
            data,
            &canon,
            record.hash.clone(),
        );
        line.push('\n');
        Ok((cp, line))
    }
}

/// Advances the chain past a record that was written.
fn advance(state: &mut State, record: &Record) {
    if record.seq == 0 {
        state.run_id = Some(record.hash.clone());
    }
    state.next_seq += 1;
    state.prev = record.hash.clone();
    state.run_finished = record.kind == "run-finished";
    state.since_checkpoint = if record.kind == checkpoint::KIND {
        state.last_checkpoint = std::time::Instant::now();
        0
    } else {
        state.since_checkpoint + 1
    };
}

impl EventSink for TranscriptWriter {
    fn emit(&self, event: &Event) -> io::Result<()> {
        // Serializing and canonicalizing happen before taking the lock, so parallel steps only
        // queue for the hash and the write.
        let (kind, data) = event_parts(event)?;
        let canon = (!matches!(kind.as_str(), "run-started" | "run-finished"))
            .then(|| canonical_string(&data));
        let mut state = self.lock();
        self.append_parts(&mut state, kind, data, canon, None)
    }
}

impl Drop for TranscriptWriter {
    /// A safety net: a run that forgot to call `finish` (or unwound from a panic) still leaves a
    /// complete, signed transcript. Errors cannot be reported from here; `finish` reports them.
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// `<transcript>.sig` for a transcript at `path`.
pub fn signature_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".sig");
    PathBuf::from(p)
}

fn canonical_string(data: &Map<String, Value>) -> String {
    String::from_utf8(super::canonical::canonical_object(data)).unwrap_or_default()
}

/// Splits a serialized event into its `type` tag and the remaining fields.
fn event_parts(event: &Event) -> io::Result<(String, Map<String, Value>)> {
    let value = serde_json::to_value(event).map_err(io::Error::other)?;
    let Value::Object(mut map) = value else {
        return Err(io::Error::other("event did not serialize to an object"));
    };
    let kind = match map.remove("type") {
        Some(Value::String(kind)) => kind,
        _ => return Err(io::Error::other("event has no type tag")),
    };
    Ok((kind, map))
}
