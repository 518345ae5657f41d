//! The hash-chain check: every line parses, is in canonical form, has the next sequence number,
//! links to the previous record's hash, and carries its own correct hash.
//!
//! This is the part of verification that needs no key, so it runs the same for `verify`, for
//! reading a transcript back (resume) and for reopening a killed run's transcript.

use super::record::{GENESIS_PREV, Record};
use super::verify::{Problem, ProblemKind};

/// A parsed record and the 1-based line it came from.
#[derive(Debug, Clone)]
pub(crate) struct Located {
    pub(crate) line: usize,
    pub(crate) record: Record,
}

/// Checks the chain of a whole transcript file; returns the records that parsed and the problems.
pub(crate) fn check_chain(bytes: &[u8]) -> (Vec<Located>, Vec<Problem>) {
    let mut records = Vec::new();
    let mut problems = Vec::new();
    if bytes.is_empty() {
        problems.push(Problem::file(
            ProblemKind::Incomplete,
            "the transcript is empty",
        ));
        return (records, problems);
    }
    let complete_lines = bytes.ends_with(b"\n");
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let lines: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
    let count = lines.len();
    // `None` after a line that did not parse: the next link cannot be checked, only its own hash.
    let mut expected_prev: Option<String> = Some(GENESIS_PREV.into());
    // Expected from the previous record's seq, so one gap is reported once, not on every line after.
    let mut expected_seq = 0u64;
    for (index, raw) in lines.into_iter().enumerate() {
        let line = index + 1;
        if !complete_lines && line == count {
            problems.push(Problem::at(
                Some(expected_seq),
                line,
                ProblemKind::CutLine,
                "the last line is incomplete (no final newline): the file was cut",
            ));
        }
        match parse_line(raw) {
            Err(what) => {
                problems.push(Problem::at(
                    Some(expected_seq),
                    line,
                    ProblemKind::Malformed,
                    what,
                ));
                expected_prev = None;
                expected_seq = expected_seq.saturating_add(1);
            }
            Ok(record) => {
                check_record(
                    &record,
                    raw,
                    expected_seq,
                    expected_prev.as_deref(),
                    line,
                    &mut problems,
                );
                expected_prev = Some(record.hash.clone());
                expected_seq = record.seq.saturating_add(1);
                records.push(Located { line, record });
            }
        }
    }
    (records, problems)
}

fn parse_line(raw: &[u8]) -> Result<Record, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "the line is not valid UTF-8".to_string())?;
    Record::parse(text)
}

fn check_record(
    record: &Record,
    raw: &[u8],
    expected_seq: u64,
    expected_prev: Option<&str>,
    line: usize,
    problems: &mut Vec<Problem>,
) {
    let seq = Some(record.seq);
    let mut add = |kind, what: String| problems.push(Problem::at(seq, line, kind, what));
    if record.seq != expected_seq {
        add(
            ProblemKind::Sequence,
            format!(
                "sequence number {} where {expected_seq} was expected",
                record.seq
            ),
        );
    }
    if let Some(prev) = expected_prev
        && record.prev != prev
    {
        add(
            ProblemKind::BrokenChain,
            "`prev` does not match the previous record's hash (a record was removed, inserted or reordered)".into(),
        );
    }
    let computed = record.compute_hash();
    if record.hash != computed {
        add(
            ProblemKind::HashMismatch,
            format!(
                "hash mismatch: recorded {}, computed {computed} (the record was changed)",
                record.hash
            ),
        );
    } else if record.to_line().as_bytes() != raw {
        // Same hash but different bytes: whitespace, key order or escaping was altered.
        add(
            ProblemKind::NotCanonical,
            "the line is not in canonical form (it was rewritten)".into(),
        );
    }
}
