//! `report`: snapshots of what the post-mortem reads, and escaping of hostile transcript text.

#![allow(clippy::unwrap_used)]

use esus_ir::transcript::report::{ReportFormat, render_report};
use esus_ir::transcript::{Signer, VerifyOptions, read_transcript, verify_transcript};

use crate::transcript_support::{Ending, write_run, write_run_named};

fn report(path: &std::path::Path, format: ReportFormat) -> String {
    let v = verify_transcript(path, &VerifyOptions::default()).unwrap();
    render_report(&read_transcript(path).unwrap(), &v, format)
}

fn snapshot(name: &str, text: &str) {
    insta::with_settings!({
        snapshot_path => "../fixtures/transcript/snapshots",
        filters => vec![
            (r"SHA256:[A-Za-z0-9+/]{43}", "[fingerprint]"),
            (r"\b[0-9a-f]{64}\b", "[sha256]"),
            (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "[ts]"),
            (r"esus-ir \| \d+\.\d+\.\d+", "esus-ir | [version]"),
            (r"<th>esus-ir</th><td>\d+\.\d+\.\d+", "<th>esus-ir</th><td>[version]"),
        ],
    }, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn markdown_report_of_a_successful_run() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Success);
    snapshot("report_success", &report(&path, ReportFormat::Markdown));
}

#[test]
fn markdown_report_of_a_declined_run() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Declined);
    snapshot("report_declined", &report(&path, ReportFormat::Markdown));
}

#[test]
fn markdown_report_of_a_killed_unsigned_run_says_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Failed);
    std::fs::remove_file(esus_ir::transcript::signature_path(&path)).unwrap();
    let text = report(&path, ReportFormat::Markdown);
    assert!(text.contains("| Verification | **INVALID** |"));
    assert!(text.contains("Problem: unsigned"));
    assert!(text.contains("not reached"));
}

#[test]
fn hostile_text_is_escaped_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let name = "<script>alert(1)</script> | [x](javascript:alert(2)) & \"q\"";
    let (path, _) = write_run_named(
        dir.path(),
        Ending::Success,
        name,
        Signer::generate("t").unwrap(),
    );
    let html = report(&path, ReportFormat::Html);
    assert!(!html.contains("<script>"));
    assert!(html.contains(
        "&lt;script&gt;alert(1)&lt;/script&gt; | [x](javascript:alert(2)) &amp; &quot;q&quot;"
    ));
    let md = report(&path, ReportFormat::Markdown);
    assert!(!md.contains("<script>"));
    assert!(
        md.contains(r"&lt;script&gt;alert(1)&lt;/script&gt; \| \[x\](javascript:alert(2)) &amp; ")
    );
}

#[test]
fn html_report_of_a_failed_run() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Failed);
    snapshot("report_failed_html", &report(&path, ReportFormat::Html));
}
