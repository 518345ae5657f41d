//! The incident a report tells: every leg of a run folder (the run, then each resume) on one time
//! axis that starts when the incident started — the first leg — so that "contained after 14 s"
//! and the picture's containment line mean the same thing whichever leg proved it.
//!
//! Each leg is read on its own into a [`Timeline`]; this module places the legs on the axis,
//! splits the incident's time into working, waiting for a person (a prompt open) and between legs,
//! and checks every evidence file the records name against the file on disk.

use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::model::{Containment, Decision, DecisionRow, EvidenceRow, Timeline, human_duration};
use crate::transcript::canonical::sha256_hex;
use crate::transcript::findings::{Problem, Verification};
use crate::transcript::record::Record;

/// One leg as the caller read it: its file name in the run folder, its records (chain checked)
/// and what verifying it on its own found.
#[derive(Debug, Clone)]
pub struct LegInput {
    /// The transcript's file name (`transcript.jsonl`, `transcript.2.jsonl`, …).
    pub file: String,
    /// Its records.
    pub records: Vec<Record>,
    /// Its own verification.
    pub verification: Verification,
}

/// A leg placed on the incident's axis.
#[derive(Debug, Clone)]
pub struct Leg {
    /// 1 for the first leg present, then 2, 3, …
    pub number: usize,
    /// Its file name.
    pub file: String,
    /// What its records say.
    pub timeline: Timeline,
    /// Its own verification.
    pub verification: Verification,
    /// Where it starts and ends, in ms from the incident's start.
    pub start_ms: i64,
    /// See `start_ms`.
    pub end_ms: i64,
}

/// A stretch of time a person was being asked, on the axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// Index into [`Incident::legs`].
    pub leg: usize,
    /// Index into that leg's `timeline.decisions`.
    pub decision: usize,
    /// When the prompt opened, ms from the incident's start.
    pub from_ms: i64,
    /// When it was answered or abandoned.
    pub to_ms: i64,
}

/// What the file on disk says about a recorded evidence file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceStatus {
    /// The file is there and its SHA-256 is the recorded one.
    Ok,
    /// No such file in the evidence folder.
    Missing,
    /// The file is there but its bytes are not what was recorded.
    DigestMismatch,
    /// The recorded path leaves the evidence folder: not read.
    UnsafePath,
}

impl EvidenceStatus {
    /// The word the reports show.
    pub fn word(self) -> &'static str {
        match self {
            EvidenceStatus::Ok => "ok",
            EvidenceStatus::Missing => "missing",
            EvidenceStatus::DigestMismatch => "digest mismatch",
            EvidenceStatus::UnsafePath => "unsafe path (not read)",
        }
    }
}

/// A recorded evidence file, checked.
#[derive(Debug, Clone)]
pub struct EvidenceCheck {
    /// The leg (number) whose records first name it.
    pub leg: usize,
    /// The record's facts.
    pub row: EvidenceRow,
    /// What the file on disk says.
    pub status: EvidenceStatus,
}

/// Where the incident's containment verdict sits on the axis.
#[derive(Debug, Clone)]
pub struct ContainmentMark {
    /// The leg (number) whose record (or estimate) it is.
    pub leg: usize,
    /// ms from the incident's start.
    pub at_ms: i64,
    /// Whether it is the last-destructive-step estimate of an older transcript.
    pub estimate: bool,
}

/// The whole incident.
#[derive(Debug, Clone)]
pub struct Incident {
    /// The legs present, oldest first.
    pub legs: Vec<Leg>,
    /// When the incident started (RFC 3339): the first leg's start, or the start an
    /// earlier leg that is no longer in the folder recorded for it.
    pub started: String,
    /// Where the axis ends, ms from `started`: the last record of the last leg (or the
    /// containment moment, should it be later).
    pub end_ms: i64,
    /// Prompts open, across every leg.
    pub waits: Vec<Wait>,
    /// Every evidence file the legs name, each (file, digest) once.
    pub evidence: Vec<EvidenceCheck>,
    /// Whether the chain of legs verifies as one (the last leg with every earlier link).
    pub ok: bool,
    /// Problems of the chain between legs (a leg replaced, a link missing), beyond each leg's own.
    pub chain_problems: Vec<Problem>,
    /// Warnings about the chain (an earlier leg not in the folder).
    pub chain_warnings: Vec<String>,
    /// The breach's scope from the audit evidence, when the incident has audit evidence the
    /// transcript vouches for and names the compromised user.
    pub scope: Option<crate::scope::model::Scope>,
}

impl Incident {
    /// Places `legs` (oldest first, at least one) on one axis. `chain` is the last leg verified
    /// with its earlier links (`check_ancestors`); `evidence_dir` is where the files are.
    pub fn build(legs: Vec<LegInput>, chain: &Verification, evidence_dir: &Path) -> Incident {
        let timelines: Vec<Timeline> = legs
            .iter()
            .map(|l| Timeline::from_records(&l.records))
            .collect();
        let started = incident_start(&timelines);
        let offset = |ts: &str| offset_ms(&started, ts);
        let mut out = Incident {
            legs: Vec::new(),
            started: started.clone(),
            end_ms: 0,
            waits: Vec::new(),
            evidence: Vec::new(),
            ok: chain.ok,
            chain_problems: Vec::new(),
            chain_warnings: chain.warnings.clone(),
            scope: None,
        };
        for (i, (input, timeline)) in legs.into_iter().zip(timelines).enumerate() {
            let start_ms = offset(&timeline.started).unwrap_or(0).max(0);
            let end_ms = timeline
                .finished
                .as_deref()
                .or(Some(timeline.last_ts.as_str()))
                .and_then(offset)
                .unwrap_or(start_ms)
                .max(start_ms);
            for (d, row) in timeline.decisions.iter().enumerate() {
                if let Some(from_ms) = row.asked.as_deref().and_then(offset) {
                    let to_ms = offset(&row.ts).unwrap_or(from_ms).max(from_ms);
                    out.waits.push(Wait {
                        leg: i,
                        decision: d,
                        from_ms,
                        to_ms,
                    });
                }
            }
            for row in &timeline.evidence {
                if !out
                    .evidence
                    .iter()
                    .any(|e| e.row.file == row.file && e.row.sha256 == row.sha256)
                {
                    out.evidence.push(EvidenceCheck {
                        leg: i + 1,
                        row: row.clone(),
                        status: check_file(evidence_dir, &row.file, &row.sha256),
                    });
                }
            }
            // A leg's own problems are shown with it; what is left of the chain's are the links.
            if i == 0 {
                out.chain_problems = chain.problems.clone();
            }
            out.chain_problems
                .retain(|p| !input.verification.problems.contains(p));
            out.end_ms = out.end_ms.max(end_ms);
            out.legs.push(Leg {
                number: i + 1,
                file: input.file,
                timeline,
                verification: input.verification,
                start_ms,
                end_ms,
            });
        }
        if let Some(last) = out.legs.last() {
            let own = &last.verification.warnings;
            out.chain_warnings.retain(|w| !own.contains(w));
        }
        if let Some(mark) = out.containment_mark() {
            out.end_ms = out.end_ms.max(mark.at_ms);
        }
        out
    }

    /// The last leg (there is always one).
    pub fn last(&self) -> Option<&Leg> {
        self.legs.last()
    }

    /// ms from the incident's start to `ts`.
    pub fn offset_ms(&self, ts: &str) -> Option<i64> {
        offset_ms(&self.started, ts)
    }

    /// The leg whose containment facts speak for the incident: the last one that recorded a
    /// verdict (every leg checks containment again), else the last leg (its estimate).
    pub fn containment_leg(&self) -> Option<&Leg> {
        self.legs
            .iter()
            .rev()
            .find(|l| l.timeline.containment_record.is_some())
            .or(self.last())
    }

    /// Where containment was reached on the axis, if it was.
    pub fn containment_mark(&self) -> Option<ContainmentMark> {
        let leg = self.containment_leg()?;
        match leg.timeline.containment_facts() {
            // The recorded time counts from the chain's start, which is the axis's start; its
            // moment is the fallback for a record without one.
            Containment::Recorded(c) => {
                let at_ms = c
                    .time_to_containment
                    .and_then(|d| i64::try_from(d.as_millis()).ok())
                    .or_else(|| c.at.as_deref().and_then(|at| self.offset_ms(at)))?;
                (c.state == "contained").then_some(ContainmentMark {
                    leg: leg.number,
                    at_ms: at_ms.max(0),
                    estimate: false,
                })
            }
            // An older transcript's estimate counts from its own leg's start.
            Containment::Estimated(Some((d, _))) => Some(ContainmentMark {
                leg: leg.number,
                at_ms: leg.start_ms + i64::try_from(d.as_millis()).ok()?,
                estimate: true,
            }),
            Containment::Estimated(None) | Containment::DryRun => None,
        }
    }

    /// Time a prompt was open, in ms: the union of the waits (two prompts are never open at
    /// once, but a derived opening time may overlap the answer before it).
    pub fn waiting_ms(&self) -> i64 {
        let mut spans: Vec<(i64, i64)> = self.waits.iter().map(|w| (w.from_ms, w.to_ms)).collect();
        spans.sort_unstable();
        let mut total = 0;
        let mut reach = i64::MIN;
        for (from, to) in spans {
            let from = from.max(reach);
            if to > from {
                total += to - from;
            }
            reach = reach.max(to);
        }
        total
    }

    /// Time between legs, in ms: from one leg's end to the next one's start.
    pub fn between_legs_ms(&self) -> i64 {
        self.legs
            .windows(2)
            .map(|w| (w[1].start_ms - w[0].end_ms).max(0))
            .sum()
    }

    /// Time esus-ir was working, in ms: the legs' time less the prompts'.
    pub fn working_ms(&self) -> i64 {
        let legs: i64 = self.legs.iter().map(|l| l.end_ms - l.start_ms).sum();
        (legs - self.waiting_ms()).max(0)
    }

    /// The decision a wait belongs to.
    pub fn decision(&self, w: &Wait) -> Option<&DecisionRow> {
        self.legs.get(w.leg)?.timeline.decisions.get(w.decision)
    }

    /// The one-paragraph summary on top of a report, as plain text (renderers escape it).
    pub fn summary(&self) -> String {
        let Some(last) = self.last() else {
            return String::new();
        };
        if self.legs.len() == 1 && self.legs[0].start_ms == 0 {
            return format!("{} Time: {}.", last.timeline.summary(), self.time_split());
        }
        let first = &self.legs[0].timeline;
        let mut s = first.summary_opening();
        s.push_str(&format!(
            " The incident ran in {} legs: {}.",
            self.legs.len(),
            self.legs
                .iter()
                .map(leg_phrase)
                .collect::<Vec<_>>()
                .join("; then ")
        ));
        s.push_str(&format!(
            " It ended {} after the incident's start.",
            human_duration(SignedDuration::from_millis(self.end_ms))
        ));
        s.push(' ');
        s.push_str(&self.containment_sentence());
        s.push_str(&format!(" Time: {}.", self.time_split()));
        s
    }

    /// "Contained 14.921 s after the incident's start (leg 3), at …" and the like.
    pub fn containment_sentence(&self) -> String {
        let Some(leg) = self.containment_leg() else {
            return String::new();
        };
        let mut sentence = leg.timeline.containment_sentence();
        if self.legs.len() > 1 {
            sentence = sentence.replacen(
                "after the incident's start",
                &format!("after the incident's start (proven in leg {})", leg.number),
                1,
            );
            if !matches!(leg.timeline.containment_facts(), Containment::Recorded(_))
                && let Some(mark) = self.containment_mark()
            {
                sentence.push_str(&format!(
                    " On the incident's axis: {} after its start.",
                    human_duration(SignedDuration::from_millis(mark.at_ms))
                ));
            }
        }
        sentence
    }

    /// "working 7.9 s, waiting for a person 7.1 s (3 prompts), between legs 5.8 s".
    pub fn time_split(&self) -> String {
        let d = |ms| human_duration(SignedDuration::from_millis(ms));
        let prompts = self.waits.len();
        let mut s = format!(
            "working {}, waiting for a person {} ({prompts} prompt{})",
            d(self.working_ms()),
            d(self.waiting_ms()),
            if prompts == 1 { "" } else { "s" }
        );
        if self.legs.len() > 1 {
            s.push_str(&format!(", between legs {}", d(self.between_legs_ms())));
        }
        s
    }
}

/// "leg 2 (transcript.2.jsonl) by root was interrupted at the delete prompt".
fn leg_phrase(leg: &Leg) -> String {
    let t = &leg.timeline;
    let how = match t.outcome.as_ref().map(|(o, _)| o.as_str()) {
        Some("success") => "succeeded".to_string(),
        Some("declined") => match t
            .decisions
            .iter()
            .find(|d| d.decision == Decision::Declined)
        {
            Some(d) if d.how == "missing" => format!("stopped: no approval for {}", d.step),
            Some(d) => format!("stopped: {} was declined", d.step),
            None => "stopped at a declined confirmation".to_string(),
        },
        Some("interrupted") => match t
            .decisions
            .iter()
            .find(|d| d.decision == Decision::Interrupted)
        {
            Some(d) => format!("was interrupted (Ctrl-C) at the {} prompt", d.step),
            None => "was interrupted".to_string(),
        },
        Some(other) => format!("ended {other}"),
        None => "did not finish".to_string(),
    };
    let operator = if t.operator.is_empty() {
        String::new()
    } else {
        format!(" by {}", t.operator)
    };
    format!("leg {} ({}){operator} {how}", leg.number, leg.file)
}

/// The incident's start: the first leg's, unless a leg records an earlier start for the chain
/// (its first leg is no longer in the folder).
fn incident_start(timelines: &[Timeline]) -> String {
    let mut start = timelines
        .first()
        .map(|t| t.started.clone())
        .unwrap_or_default();
    for t in timelines {
        if let Some(chain) = t.chain_started_at.as_deref()
            && offset_ms(&start, chain).is_some_and(|ms| ms < 0)
        {
            start = chain.to_string();
        }
    }
    start
}

fn offset_ms(start: &str, ts: &str) -> Option<i64> {
    let a: Timestamp = start.parse().ok()?;
    let b: Timestamp = ts.parse().ok()?;
    i64::try_from(b.duration_since(a).as_millis()).ok()
}

/// Reads `dir/file` and compares its SHA-256 with the recorded one. A path that could leave the
/// folder is not read at all: the transcript is untrusted text.
fn check_file(dir: &Path, file: &str, sha256: &str) -> EvidenceStatus {
    let plain = !file.is_empty()
        && Path::new(file)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !plain {
        return EvidenceStatus::UnsafePath;
    }
    let path: PathBuf = dir.join(file);
    match std::fs::read(&path) {
        Ok(bytes) if sha256_hex(&bytes) == sha256 => EvidenceStatus::Ok,
        Ok(_) => EvidenceStatus::DigestMismatch,
        Err(_) => EvidenceStatus::Missing,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_relative_path_is_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), b"x").unwrap();
        let x = sha256_hex(b"x");
        assert_eq!(check_file(dir.path(), "a.json", &x), EvidenceStatus::Ok);
        assert_eq!(
            check_file(dir.path(), "a.json", &sha256_hex(b"y")),
            EvidenceStatus::DigestMismatch
        );
        assert_eq!(
            check_file(dir.path(), "b.json", &x),
            EvidenceStatus::Missing
        );
        for bad in ["../a.json", "/etc/passwd", "", "./a.json"] {
            assert_eq!(
                check_file(dir.path(), bad, &x),
                EvidenceStatus::UnsafePath,
                "{bad}"
            );
        }
    }

    #[test]
    fn an_earlier_recorded_chain_start_moves_the_axis_start() {
        let leg = |started: &str, chain: Option<&str>| Timeline {
            started: started.into(),
            chain_started_at: chain.map(str::to_string),
            ..Timeline::default()
        };
        let t = [leg(
            "2026-01-02T03:04:10.000Z",
            Some("2026-01-02T03:04:05.000Z"),
        )];
        assert_eq!(incident_start(&t), "2026-01-02T03:04:05.000Z");
        let t = [
            leg("2026-01-02T03:04:05.000Z", None),
            leg("2026-01-02T03:05:00.000Z", Some("2026-01-02T03:04:05.000Z")),
        ];
        assert_eq!(incident_start(&t), "2026-01-02T03:04:05.000Z");
    }
}
