//! The hash-chain check: every line parses, is in canonical form, has the next sequence number,
//! links to the previous record's hash, and carries its own correct hash.
//!
//! This is the part of verification that needs no key, so it runs the same for `verify`, for
//! reading a transcript back (resume) and for reopening a killed run's transcript.

use super::findings::{Problem, ProblemKind};
use super::record::{GENESIS_PREV, Record};

/// A parsed record and the 1-based line it came from.
#[derive(Debug, Clone)]
pub(crate) struct Located {
    pub(crate) line: usize,
    pub(crate) record: Record,
}

/// Checks the chain of a whole transcript file; returns the records that parsed and the problems.
pub(crate) fn check_chain(bytes: &[u8]) -> (Vec<Located>, Vec<Problem>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    check_chain_on(bytes, threads)
}

/// [`check_chain`] reading the lines on up to `threads` threads.
fn check_chain_on(bytes: &[u8], threads: usize) -> (Vec<Located>, Vec<Problem>) {
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
    records.reserve_exact(count);
    let read = read_all(&lines, threads).into_iter().flatten();
    for (line, (parsed, own)) in (1..).zip(read) {
        if !complete_lines && line == count {
            problems.push(Problem::at(
                Some(expected_seq),
                line,
                ProblemKind::CutLine,
                "the last line is incomplete (no final newline): the file was cut",
            ));
        }
        match parsed {
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
                check_link(
                    &record,
                    expected_seq,
                    expected_prev.as_deref(),
                    line,
                    &mut problems,
                );
                if let Some((kind, what)) = own {
                    problems.push(Problem::at(Some(record.seq), line, kind, what));
                }
                expected_prev = Some(record.hash.clone());
                expected_seq = record.seq.saturating_add(1);
                records.push(Located { line, record });
            }
        }
    }
    (records, problems)
}

/// A line read on its own: the record, or why it is not one, and what is wrong with the record
/// by itself (its hash, its canonical form).
type Read = (Result<Record, String>, Option<(ProblemKind, String)>);

/// Every line read on its own, in order, in chunks read in parallel: parsing, canonicalizing
/// and hashing each record is most of `verify`'s work and needs nothing from the line before
/// (issue 21: a 100,000-item run's 300,000 records). Only the links are checked in order.
fn read_all(lines: &[&[u8]], threads: usize) -> Vec<Vec<Read>> {
    let read = |chunk: &[&[u8]]| -> Vec<Read> {
        chunk
            .iter()
            .map(|raw| match parse_line(raw) {
                Ok(record) => {
                    let own = check_own(&record, raw);
                    (Ok(record), own)
                }
                Err(what) => (Err(what), None),
            })
            .collect()
    };
    if threads < 2 || lines.len() < PARALLEL_FROM {
        return vec![read(lines)];
    }
    let size = lines.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = lines
            .chunks(size)
            .map(|chunk| s.spawn(move || read(chunk)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// From how many lines the chain is read on more than one thread.
const PARALLEL_FROM: usize = 4096;

fn parse_line(raw: &[u8]) -> Result<Record, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "the line is not valid UTF-8".to_string())?;
    Record::parse(text)
}

fn check_link(
    record: &Record,
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
}

/// What is wrong with a record by itself: its hash, else its line's form.
fn check_own(record: &Record, raw: &[u8]) -> Option<(ProblemKind, String)> {
    // The data canonicalized once gives the hash, and the line is compared with what it must
    // be piece by piece (building it copied every record's data once more).
    let canon = super::canonical::canonical_object(&record.data);
    let computed = Record::seal_hash(record.seq, &record.ts, &record.kind, &canon, &record.prev);
    if record.hash != computed {
        Some((
            ProblemKind::HashMismatch,
            format!(
                "hash mismatch: recorded {}, computed {computed} (the record was changed)",
                record.hash
            ),
        ))
    } else if !Record::is_line(
        raw,
        record.seq,
        &record.ts,
        &record.kind,
        &canon,
        &record.prev,
        &record.hash,
    ) {
        // Same hash but different bytes: whitespace, key order or escaping was altered.
        Some((
            ProblemKind::NotCanonical,
            "the line is not in canonical form (it was rewritten)".into(),
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value, json};

    /// A valid chain of `n` records, as the file's bytes, and the lines.
    fn chain(n: u64) -> Vec<String> {
        let mut prev = GENESIS_PREV.to_string();
        let mut lines = Vec::new();
        for seq in 0..n {
            let mut data = Map::new();
            data.insert("step".into(), Value::from(format!("s{seq}")));
            data.insert("n".into(), json!(seq));
            let canon = String::from_utf8(super::super::canonical::canonical_object(&data))
                .unwrap_or_default();
            let kind = if seq == 0 {
                "run-started"
            } else {
                "step-finished"
            };
            let (record, line) = Record::sealed(
                seq,
                format!("2026-12-02T00:00:0{seq}.000Z"),
                kind.into(),
                data,
                &canon,
                prev,
            );
            prev = record.hash.clone();
            lines.push(line);
        }
        lines
    }

    fn bytes(lines: &[String]) -> Vec<u8> {
        lines
            .iter()
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect()
    }

    fn kinds(problems: &[Problem]) -> Vec<(ProblemKind, Option<usize>)> {
        problems.iter().map(|p| (p.kind, p.line)).collect()
    }

    #[test]
    fn an_intact_chain_has_every_record_and_no_problem() {
        let lines = chain(4);
        let (records, problems) = check_chain(&bytes(&lines));
        assert!(problems.is_empty(), "{problems:?}");
        let seen: Vec<(usize, u64)> = records.iter().map(|l| (l.line, l.record.seq)).collect();
        assert_eq!(seen, [(1, 0), (2, 1), (3, 2), (4, 3)]);
    }

    /// Read in parallel chunks, a long chain gives the records and problems it gives read on one
    /// thread — tampering at the chunks' edges included.
    #[test]
    fn a_chain_read_in_parallel_finds_what_one_thread_finds() {
        let n = PARALLEL_FROM as u64 + 904; // 5,000 lines: chunks of 1,667 on three threads
        let mut lines = chain(n);
        lines[1666] = lines[1666].replace("\"s1666\"", "\"s0\"");
        lines[3334] = "{not a record".into();
        lines.remove(3333);
        lines[4000] = lines[4000].replacen("{\"seq\"", "{ \"seq\"", 1);
        let mut file = bytes(&lines);
        file.pop();
        let (one, found) = check_chain_on(&file, 1);
        assert_eq!(
            kinds(&found),
            [
                (ProblemKind::HashMismatch, Some(1667)),
                // Record 3333 removed; the line after its gap does not parse, and the one after
                // that has no link to check, only its number.
                (ProblemKind::Malformed, Some(3334)),
                (ProblemKind::Sequence, Some(3335)),
                (ProblemKind::NotCanonical, Some(4001)),
                (ProblemKind::CutLine, Some(4999)),
            ]
        );
        for threads in [2, 3, 8] {
            let (many, again) = check_chain_on(&file, threads);
            let lines = |r: &[Located]| -> Vec<(usize, String)> {
                r.iter().map(|l| (l.line, l.record.hash.clone())).collect()
            };
            assert_eq!(lines(&many), lines(&one), "{threads} threads");
            let all =
                |p: &[Problem]| -> Vec<String> { p.iter().map(|p| format!("{p:?}")).collect() };
            assert_eq!(all(&again), all(&found), "{threads} threads");
        }
    }

    #[test]
    fn an_empty_file_is_incomplete() {
        let (records, problems) = check_chain(b"");
        assert!(records.is_empty());
        assert_eq!(kinds(&problems), [(ProblemKind::Incomplete, None)]);
    }

    #[test]
    fn a_changed_value_is_a_hash_mismatch_on_its_line() {
        let mut lines = chain(3);
        lines[1] = lines[1].replace("\"s1\"", "\"s9\"");
        let (_, problems) = check_chain(&bytes(&lines));
        assert_eq!(kinds(&problems), [(ProblemKind::HashMismatch, Some(2))]);
    }

    #[test]
    fn a_removed_record_breaks_sequence_and_chain_at_the_next_line() {
        let mut lines = chain(4);
        lines.remove(1);
        let (_, problems) = check_chain(&bytes(&lines));
        assert_eq!(
            kinds(&problems),
            [
                (ProblemKind::Sequence, Some(2)),
                (ProblemKind::BrokenChain, Some(2))
            ]
        );
    }

    #[test]
    fn swapped_records_are_out_of_sequence_and_unlinked() {
        let mut lines = chain(4);
        lines.swap(1, 2);
        let (_, problems) = check_chain(&bytes(&lines));
        let first = problems.first().map(|p| (p.kind, p.line));
        assert_eq!(
            first,
            Some((ProblemKind::Sequence, Some(2))),
            "{problems:?}"
        );
        assert!(problems.iter().any(|p| p.kind == ProblemKind::BrokenChain));
    }

    #[test]
    fn a_rewritten_line_with_the_same_content_is_not_canonical() {
        let mut lines = chain(2);
        lines[1] = lines[1].replacen("{\"seq\":1,", "{\"seq\": 1,", 1);
        let (records, problems) = check_chain(&bytes(&lines));
        assert_eq!(records.len(), 2);
        assert_eq!(kinds(&problems), [(ProblemKind::NotCanonical, Some(2))]);
    }

    #[test]
    fn a_cut_last_line_is_named_and_the_complete_ones_kept() {
        let lines = chain(3);
        let mut b = bytes(&lines);
        b.truncate(b.len() - 20);
        let (records, problems) = check_chain(&b);
        assert_eq!(records.len(), 2, "the two complete records are read");
        assert_eq!(
            problems.first().map(|p| (p.kind, p.line)),
            Some((ProblemKind::CutLine, Some(3)))
        );
        // A file that ends in a newline has no cut line.
        let (_, whole) = check_chain(&bytes(&lines));
        assert!(!whole.iter().any(|p| p.kind == ProblemKind::CutLine));
    }

    #[test]
    fn a_line_that_is_not_a_record_is_malformed_and_the_next_is_not_trusted_to_link() {
        let mut lines = chain(3);
        lines[1] = "not json".into();
        let (records, problems) = check_chain(&bytes(&lines));
        assert_eq!(records.len(), 2);
        assert_eq!(
            problems.first().map(|p| (p.kind, p.line)),
            Some((ProblemKind::Malformed, Some(2)))
        );
    }
}
