//! The transcript writer: an [`EventSink`] that turns the executor's events into chained records.
//!
//! Each event becomes one line, written before `emit` returns (and fsynced at step boundaries),
//! so a killed process leaves a valid prefix; only an answer or an item's end queued behind a
//! write in progress returns before its line is written, by that write's leader (see
//! [`TranscriptWriter::commit`]). Lines of events emitted at once (the items of a fan-out) share
//! one `write`: a group commit, led by whichever emitter finds the file free. After each record that ends a unit of
//! work or may precede a prompt, after any record when 200 ms have passed since the last one, and
//! at least every [`checkpoint::EVERY`] records, the writer appends a `checkpoint` signed with the run's key, so
//! that prefix is signed too. [`TranscriptWriter::finish`] closes the
//! transcript — adding a `run-finished` record if the run never emitted one — and writes the
//! detached SSHSIG signature `<transcript>.sig`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::TranscriptError;
use super::canonical_ser::tagged_canonical_with;
use super::checkpoint;
use super::fsutil::{create_private_dir_all, create_private_file, write_private_atomic};
use super::read::read_transcript;
use super::record::{GENESIS_PREV, Record};
use super::sign::Signer;
use crate::event::{Event, EventSink, RunOutcome};

/// From how many bytes of data on a record's line is made in the data's own buffer
/// ([`Record::seal_line_in`]) rather than copied into the queue.
const IN_PLACE: usize = 1 << 20;

/// A source of timestamps, replaceable so tests get stable transcripts.
pub type Clock = Box<dyn Fn() -> Timestamp + Send + Sync>;

/// Writes a transcript as the run happens and signs it at the end.
pub struct TranscriptWriter {
    path: PathBuf,
    signer: Signer,
    clock: Clock,
    state: Mutex<State>,
    /// Written only by the one emitter leading a group commit (see [`TranscriptWriter::commit`]),
    /// outside the lock.
    file: File,
    /// Woken when a group commit ends.
    committed: Condvar,
    /// A kill point for the reliability suite (`ESUS_IR_KILL_AFTER_RECORDS=N`): once N lines are
    /// on disk the process SIGKILLs itself, so a test can stop a run at every record boundary
    /// exactly, where a kill from outside lands wherever the scheduler happens to be.
    kill_after: Option<u64>,
}

/// The variable that sets [`TranscriptWriter`]'s kill point (tests only; documented in
/// docs/reliability.md).
pub const KILL_AFTER_VAR: &str = "ESUS_IR_KILL_AFTER_RECORDS";

struct State {
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
    /// Lines chained but not yet written, in order, and whether one of them must be synced.
    pending: Vec<u8>,
    pending_durable: bool,
    /// How many records are on disk (`next_seq` counts those chained).
    written: u64,
    /// An emitter is writing `pending` outside the lock; the others wait for it.
    flushing: bool,
    /// Emitters asleep on `committed`: a commit wakes them only when there are any (each
    /// wake is a system call, and most commits have nobody waiting).
    waiting: usize,
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
            file,
            committed: Condvar::new(),
            state: Mutex::new(State {
                written: next_seq,
                pending: Vec::new(),
                pending_durable: false,
                flushing: false,
                waiting: 0,
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
                let queued = self.append(&mut state, &event, Some(note));
                let (guard, written) = match queued {
                    Ok(upto) => self.commit(state, upto, true),
                    Err(e) => (state, Err(e)),
                };
                state = guard;
                written.map_err(|e| {
                    TranscriptError::io(format!("writing {}", self.path.display()), e)
                })?;
            }
            self.sign_file()?;
            state.signed = true;
        }
        Ok(self.signature_path())
    }

    fn sign_file(&self) -> Result<(), TranscriptError> {
        // Sign the bytes as they are on disk: exactly what a verifier will read — streamed, so
        // a large transcript is never held in memory whole.
        let file = File::open(&self.path)
            .map_err(|e| TranscriptError::io(format!("reading {}", self.path.display()), e))?;
        let armored = self
            .signer
            .sign_reader(io::BufReader::with_capacity(1 << 16, file))
            .map_err(|e| TranscriptError::io(format!("reading {}", self.path.display()), e))?;
        let sig_path = self.signature_path();
        write_private_atomic(&sig_path, armored.as_bytes())
            .map_err(|e| TranscriptError::io(format!("writing {}", sig_path.display()), e))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves State consistent (seq and prev are updated only
        // after a line is written), so a poisoned lock is safe to keep using.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append(&self, state: &mut State, event: &Event, note: Option<&str>) -> io::Result<u64> {
        let (kind, data) = event_parts(event)?;
        self.append_parts(state, kind, data, note)
    }

    /// Refuses a record that cannot come next: after a failed write, after the end, a second
    /// start, or a checkpoint not made by the writer.
    fn check_next(&self, state: &State, kind: &str) -> io::Result<()> {
        let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
        if state.broken {
            return Err(io::Error::other(
                "an earlier write to the transcript failed",
            ));
        }
        if state.signed || state.run_finished {
            return Err(invalid("the transcript is already finished".into()));
        }
        match (state.next_seq, kind) {
            (0, "run-started") => Ok(()),
            (0, other) => Err(invalid(format!(
                "first event must be run-started, got {other}"
            ))),
            (_, "run-started") => Err(invalid("run-started emitted twice".into())),
            (_, checkpoint::KIND) => Err(invalid("only the writer makes checkpoints".into())),
            _ => Ok(()),
        }
    }

    /// Appends a record whose data the writer extends (the run's start and end) or annotates (a
    /// note): built as a map, then canonicalized. Every other record takes [`Self::append_canon`]
    /// directly.
    fn append_parts(
        &self,
        state: &mut State,
        kind: String,
        mut data: Map<String, Value>,
        note: Option<&str>,
    ) -> io::Result<u64> {
        self.check_next(state, &kind)?;
        match kind.as_str() {
            "run-started" => {
                data.insert("tool_version".into(), env!("CARGO_PKG_VERSION").into());
                data.insert("signer".into(), self.signer.public_key_openssh().into());
            }
            "run-finished" => {
                data.insert("events".into(), Value::from(state.next_seq + 1));
                data.insert("head".into(), Value::from(state.prev.clone()));
            }
            _ => {}
        }
        if let Some(note) = note {
            data.insert("note".into(), note.into());
        }
        let canon = super::canonical::canonical_object(&data);
        self.append_canon(state, &kind, canon)
    }

    /// Chains one record of type `kind` whose `data` is `canon` (canonical JSON, computed by
    /// the caller — outside the lock when it can be), with the checkpoint that must follow it,
    /// and queues its line; [`Self::commit`] writes it. Returns how many records are chained.
    fn append_canon(&self, state: &mut State, kind: &str, canon: Vec<u8>) -> io::Result<u64> {
        let ts = format!("{:.3}", (self.clock)());
        let seq = state.next_seq;
        let hash = Record::seal_hash(seq, &ts, kind, &canon, &state.prev);
        let durable = matches!(
            kind,
            "run-started" | "confirmation" | "step-finished" | "run-finished"
        );
        let sign = kind != "run-finished"
            && (checkpoint::after(kind)
                || state.since_checkpoint + 1 >= checkpoint::EVERY
                || state.last_checkpoint.elapsed() >= checkpoint::INTERVAL);
        // The checkpoint is signed before anything is written, and both lines go out in one
        // write: a record that needs a checkpoint is never on disk without it.
        let signed = if sign {
            let run_id = if seq == 0 {
                hash.clone()
            } else {
                state.run_id.clone().unwrap_or_default()
            };
            Some(self.checkpoint_for(seq, &hash, &ts, &run_id)?)
        } else {
            None
        };
        // Straight into the queue: a batch approval's record is megabytes, and each copy of it
        // counted in the run's peak memory — so a record that large becomes its line in its own
        // buffer, the few lines queued before it moved in front.
        let prev = std::mem::take(&mut state.prev);
        if canon.len() >= IN_PLACE && state.pending.len() < IN_PLACE {
            let queued = std::mem::take(&mut state.pending);
            state.pending = Record::seal_line_in(&queued, seq, &ts, kind, canon, &prev, &hash);
        } else {
            // Room for the whole line at once, not by doubling.
            let cp_len = signed.as_ref().map_or(0, |(_, l)| l.len());
            state.pending.reserve(canon.len() + 320 + cp_len);
            Record::seal_line(&mut state.pending, seq, &ts, kind, &canon, &prev, &hash);
        }
        state.pending.push(b'\n');
        if let Some((_, cp_line)) = &signed {
            state.pending.extend_from_slice(cp_line);
        }
        // One sync for the record and the checkpoint that signs it.
        state.pending_durable |= durable;
        advance(state, seq, hash, kind);
        if let Some((cp_hash, _)) = signed {
            advance(state, seq + 1, cp_hash, checkpoint::KIND);
        }
        Ok(state.next_seq)
    }

    /// Group commit: returns once the first `upto` records are on disk (synced when one of
    /// them must be). The first emitter to find lines queued and nobody writing writes every
    /// line queued so far in one `write`, outside the lock, and goes on until nothing is
    /// queued; the others queue theirs behind it. One write then carries many items' records
    /// instead of one each.
    ///
    /// An emitter that must `wait` returns only once its line is written: a request is on disk
    /// before it is sent, what precedes a prompt before the prompt. One that need not (an
    /// answer, an item's end: [`needs_wait`]) returns as soon as its line is queued behind a
    /// write in progress, whose writer writes it next — without putting its thread to sleep.
    /// Nothing the run does outside the process depends on such a line until the next request,
    /// and that request waits for every line before its own: a killed process leaves the same
    /// records as if it had been killed just before that answer came.
    fn commit<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        upto: u64,
        wait: bool,
    ) -> (MutexGuard<'a, State>, io::Result<()>) {
        loop {
            // Done when our lines are written and no line is left queued with nobody writing.
            if state.written >= upto && (state.pending.is_empty() || state.flushing) {
                return (state, Ok(()));
            }
            if state.broken {
                let e = io::Error::other("an earlier write to the transcript failed");
                return (state, Err(e));
            }
            if state.flushing {
                if !wait {
                    return (state, Ok(()));
                }
                state.waiting += 1;
                state = self
                    .committed
                    .wait(state)
                    .unwrap_or_else(|p| p.into_inner());
                state.waiting -= 1;
                continue;
            }
            let batch = std::mem::take(&mut state.pending);
            let durable = std::mem::take(&mut state.pending_durable);
            let end = state.next_seq;
            // The kill point counts lines exactly: its writes are made one record at a time,
            // under the lock, as before group commit.
            let alone = self.kill_after.is_some();
            let write = || {
                (&self.file)
                    .write_all(&batch)
                    .and_then(|()| (&self.file).flush())
                    .and_then(|()| {
                        if durable {
                            self.file.sync_data()
                        } else {
                            Ok(())
                        }
                    })
            };
            let result = if alone {
                write()
            } else {
                state.flushing = true;
                drop(state);
                let result = write();
                state = self.lock();
                result
            };
            state.flushing = false;
            if state.waiting > 0 {
                self.committed.notify_all();
            }
            if let Err(e) = result {
                state.broken = true;
                return (state, Err(e));
            }
            state.written = end;
            if self.kill_after.is_some_and(|n| state.written >= n) {
                let _ = self.file.sync_data();
                let _ = rustix::process::kill_process(
                    rustix::process::getpid(),
                    rustix::process::Signal::KILL,
                );
            }
        }
    }

    /// The checkpoint that follows record `seq` (hash `hash`, not yet written): the run's key
    /// signs the chain head, the seq and the run id, so everything up to that record is signed
    /// even if the run never reaches its final signature. It carries the record's time `ts` (the
    /// clock is not read again). Returns its hash and its line.
    fn checkpoint_for(
        &self,
        seq: u64,
        hash: &str,
        ts: &str,
        run_id: &str,
    ) -> io::Result<(String, Vec<u8>)> {
        let covers = seq + 1;
        let message = checkpoint::message(covers, hash, run_id);
        let signature = self
            .signer
            .sign(&message)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let data = checkpoint::data(covers, hash, run_id, signature);
        let canon = super::canonical::canonical_object(&data);
        let (cp_hash, mut line) = Record::seal(covers, ts, checkpoint::KIND, &canon, hash);
        line.push(b'\n');
        Ok((cp_hash, line))
    }
}

/// Advances the chain past record `seq` (hash `hash`, type `kind`), which was written.
fn advance(state: &mut State, seq: u64, hash: String, kind: &str) {
    if seq == 0 {
        state.run_id = Some(hash.clone());
    }
    state.next_seq += 1;
    state.prev = hash;
    state.run_finished = kind == "run-finished";
    state.since_checkpoint = if kind == checkpoint::KIND {
        state.last_checkpoint = std::time::Instant::now();
        0
    } else {
        state.since_checkpoint + 1
    };
}

impl EventSink for TranscriptWriter {
    fn emit(&self, event: &Event) -> io::Result<()> {
        // The run's end, whose data the writer extends from its state, goes through a map. Every
        // other event's canonical bytes are written straight from the typed event, before taking
        // the lock, so parallel items only queue for the hash and the write.
        if matches!(event, Event::RunFinished { .. }) {
            let (kind, data) = event_parts(event)?;
            let mut state = self.lock();
            let queued = self.append_parts(&mut state, kind, data, None)?;
            return self.commit(state, queued, true).1;
        }
        // The run's start carries the inputs (a fan-out's every item): written directly too.
        let (version, signer);
        let extra: &[(&str, &Value)] = if matches!(event, Event::RunStarted { .. }) {
            version = Value::from(env!("CARGO_PKG_VERSION"));
            signer = Value::from(self.signer.public_key_openssh());
            &[("tool_version", &version), ("signer", &signer)]
        } else {
            &[]
        };
        let (kind, canon) =
            tagged_canonical_with(event, "type", extra).map_err(io::Error::other)?;
        let mut state = self.lock();
        self.check_next(&state, &kind)?;
        let queued = self.append_canon(&mut state, &kind, canon)?;
        let wait = needs_wait(&kind) || self.kill_after.is_some();
        self.commit(state, queued, wait).1
    }
}

/// Whether `emit` of a record of type `kind` returns only once its line is on disk. Only an
/// answer and an item's end may be left to the write in progress (see
/// [`TranscriptWriter::commit`]); those that sync (the run's start, a confirmation, a step's
/// end) and every other record wait.
fn needs_wait(kind: &str) -> bool {
    !matches!(kind, "response" | "item-finished")
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A record of a megabyte or more becomes its line in its own buffer: the lines queued
    /// before it stay in front, and its line is the one `Record::seal` makes.
    #[test]
    fn a_big_records_line_goes_behind_the_lines_already_queued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let w = TranscriptWriter::create(&path, Signer::generate("k").unwrap()).unwrap();
        let mut state = w.lock();
        state.pending.extend_from_slice(b"queued\n");
        let canon = format!("{{\"x\":\"{}\"}}", "a".repeat(IN_PLACE)).into_bytes();
        w.append_canon(&mut state, "note", canon.clone()).unwrap();
        let rest = state
            .pending
            .strip_prefix(b"queued\n")
            .expect("queued line first");
        let end = rest.iter().position(|b| *b == b'\n').unwrap();
        let line = std::str::from_utf8(&rest[..end]).unwrap();
        let r = Record::parse(line).unwrap();
        let (hash, sealed) = Record::seal(0, &r.ts, "note", &canon, GENESIS_PREV);
        assert_eq!(line.as_bytes(), &sealed[..]);
        assert_eq!(state.prev, hash);
        state.pending.clear();
    }

    #[test]
    fn only_an_answer_and_an_items_end_may_return_before_their_line_is_written() {
        // A request must be on disk before it is sent; what precedes a prompt, what a later
        // step is proven against, and what syncs must be too.
        for kind in [
            "run-started",
            "request",
            "confirmation",
            "step-started",
            "step-finished",
            "rotate-before",
            "witness",
            "audit-evidence",
            "containment",
            "preflight",
            "plan",
            "carried",
        ] {
            assert!(needs_wait(kind), "{kind}");
        }
        for kind in ["response", "item-finished"] {
            assert!(!needs_wait(kind), "{kind}");
        }
    }
}
