//! `report`: snapshots of what the post-mortem reads, and escaping of hostile transcript text.

#![allow(clippy::unwrap_used)]

use esus_ir::transcript::report::{ReportFormat, render_report};
use esus_ir::transcript::{Record, Signer, VerifyOptions, read_transcript, verify_transcript};
use serde_json::{Map, Value, json};

use crate::transcript_support::{Ending, forge, signer_pair, write_run, write_run_named};

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
    assert!(text.contains("- Leg 1 problem: unsigned"), "{text}");
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

/// A synthetic run rewritten by `edit` (re-chained and re-signed with the same key), so records
/// the executor does not write yet — `containment`, `incident_id` — can be tested now.
fn write_edited(
    dir: &std::path::Path,
    ending: Ending,
    name: &str,
    mut edit: impl FnMut(&mut Vec<Record>),
) -> std::path::PathBuf {
    let (writer_key, forger_key) = signer_pair(dir);
    let (path, _) = write_run_named(dir, ending, name, writer_key);
    forge(&path, &forger_key, |records| {
        edit(records);
        let events = records.len() as u64;
        if let Some(last) = records.last_mut().filter(|r| r.kind == "run-finished") {
            last.data.insert("events".into(), events.into());
        }
    });
    path
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Adds an incident id, a resumed head, a secret output, and (with `containment`) a containment
/// record just before run-finished.
fn enrich(records: &mut Vec<Record>, incident: Value, containment: Option<Value>) {
    let first = &mut records[0];
    first.data.insert("incident_id".into(), incident);
    first.data.insert("resumes".into(), "ab".repeat(32).into());
    for r in records.iter_mut() {
        if r.kind == "step-finished" && r.step() == Some("find-key") {
            r.data.insert(
                "outputs".into(),
                json!({"key_id": "k-1", "client_secret": "[secret]", "scopes": ["read", "write"]}),
            );
        }
    }
    if let Some(data) = containment {
        let at = records.len() - 1;
        let ts = records[at].ts.clone();
        records.insert(
            at,
            Record::new(0, ts, "containment".into(), obj(data), String::new()),
        );
    }
}

fn contained() -> Value {
    json!({
        "state": "contained",
        "summary": "key k-1 is deleted and refused by ESUS",
        "checks": [
            {"step": "revoke-key", "status": "ok", "detail": "DELETE answered 204"},
            {"step": "export-audit", "status": "skipped", "detail": "not a check"}
        ],
        "time_to_containment_ms": 4200,
        "at": "2026-01-02T03:04:09.200Z"
    })
}

#[test]
fn a_containment_record_is_the_source_of_the_containment_facts() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_edited(dir.path(), Ending::Success, "api-key-compromise", |r| {
        enrich(r, json!("INC-123"), Some(contained()))
    });
    let md = report(&path, ReportFormat::Markdown);
    assert!(md.contains("| Verification | VALID |"), "{md}");
    assert!(md.contains("| Incident | INC-123 |"), "{md}");
    assert!(
        md.contains("| Time to containment | 4.200 s after the incident's start (recorded) |"),
        "{md}"
    );
    assert!(md.contains("for incident INC-123"), "{md}");
    assert!(
        md.contains("Contained 4.200 s after the incident's start, at 2026-01-02 03:04:09 UTC: key k-1 is deleted and refused by ESUS."),
        "{md}"
    );
    assert!(
        md.contains("| revoke-key | ok | DELETE answered 204 |"),
        "{md}"
    );
    assert!(!md.to_lowercase().contains("estimate"), "{md}");
    snapshot("report_contained", &md);
    let html = report(&path, ReportFormat::Html);
    assert!(
        html.contains("<span class=\"pill contained\">CONTAINED</span>"),
        "{html}"
    );
    assert!(html.contains("<th>Incident</th><td>INC-123</td>"), "{html}");
    assert!(
        !html.contains("(estimate") && !html.contains("ESTIMATE"),
        "{html}"
    );
    snapshot("report_contained_html", &html);
}

#[test]
fn without_a_containment_record_the_report_says_it_estimates() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Success);
    let md = report(&path, ReportFormat::Markdown);
    assert!(
        md.contains("| Time to containment | 2.500 s after the incident's start (estimate: when the last destructive step, revoke-key, finished ok; this transcript has no containment record) |"),
        "{md}"
    );
    assert!(
        md.contains("Estimated time to containment: 2.500 s after this run's start"),
        "{md}"
    );
    assert!(
        !md.contains("| Incident |") && !md.contains("for incident"),
        "{md}"
    );
    let html = report(&path, ReportFormat::Html);
    assert!(html.contains("CONTAINED? (ESTIMATE)"), "{html}");
    assert!(html.contains("no containment record"), "{html}");
}

#[test]
fn a_not_contained_record_and_a_null_incident_id_read_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_edited(dir.path(), Ending::Failed, "api-key-compromise", |r| {
        enrich(
            r,
            Value::Null,
            Some(
                json!({"state": "not-contained", "summary": "key k-1 still authenticates",
                "checks": [], "time_to_containment_ms": null, "at": null}),
            ),
        )
    });
    let md = report(&path, ReportFormat::Markdown);
    assert!(
        !md.contains("| Incident |") && !md.contains("for incident"),
        "{md}"
    );
    assert!(
        md.contains("NOT contained: key k-1 still authenticates."),
        "{md}"
    );
    assert!(
        md.contains("| Time to containment | not reached (recorded: not-contained) |"),
        "{md}"
    );
    let html = report(&path, ReportFormat::Html);
    assert!(html.contains("NOT CONTAINED"), "{html}");
}

#[test]
fn html_has_what_markdown_has_plus_outputs_and_a_timeline_picture() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_edited(dir.path(), Ending::Success, "api-key-compromise", |r| {
        enrich(r, json!("INC-9"), None)
    });
    let html = report(&path, ReportFormat::Html);
    // Everything the Markdown shows.
    for needle in [
        "<h2>Inputs</h2>",
        "<td>label</td><td>ci</td>",
        "<td>token</td><td><span class=\"secret\">[secret]</span></td>",
        &format!(
            "<th>Resumes</th><td><span class=\"mono\">{}</span>",
            "ab".repeat(32)
        ),
        "<h2>Evidence</h2>",
        "<h2>Timeline</h2>",
        "<h2>Verification</h2>",
    ] {
        assert!(html.contains(needle), "{needle} in {html}");
    }
    // Outputs: secret ones as [secret], others as recorded.
    assert!(
        html.contains("<td>find-key</td><td class=\"mono\">key_id</td><td>k-1</td>"),
        "{html}"
    );
    assert!(
        html.contains(
            "<td class=\"mono\">client_secret</td><td><span class=\"secret\">[secret]</span></td>"
        ),
        "{html}"
    );
    assert!(
        html.contains("[&quot;read&quot;,&quot;write&quot;]"),
        "{html}"
    );
    // The summary paragraph comes first, then one inline SVG with a bar per step.
    let summary = html.find("<p class=\"summary").expect("summary");
    let svg = html.find("<svg").expect("svg");
    assert!(summary < svg && svg < html.find("<h2>Legs</h2>").unwrap());
    assert_eq!(html.matches("<svg").count(), 1);
    assert_eq!(
        html.matches("<g class=\"step\">").count(),
        3,
        "a bar per step"
    );
    assert_eq!(
        html.matches("<g class=\"leg\">").count(),
        1,
        "a bar per leg"
    );
    // The executor's duration, and apart from it the time the prompt was open (from the step's
    // start to the interactive answer).
    assert!(
        html.contains("<title>leg 1, revoke-key: ok, 250 ms + 250 ms waiting for a person, destructive</title>"),
        "{html}"
    );
    assert_eq!(html.matches("<rect class=\"wait\"").count(), 1, "{html}");
    assert!(html.contains("stroke=\"#111\""), "destructive outlined");
    assert!(html.contains("contained (estimate)"), "{html}");
    // No script, no external resource.
    assert!(!html.contains("<script"));
    assert!(!html.contains("src="));
    assert!(!html.contains("href="));
    assert!(!html.contains("url("));
}

#[test]
fn hostile_step_ids_outputs_and_containment_text_are_escaped_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let evil = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>]]>";
    let path = write_edited(
        dir.path(),
        Ending::Success,
        "api-key-compromise",
        |records| {
            for r in records.iter_mut() {
                if r.step() == Some("find-key") {
                    r.data.insert("step".into(), evil.into());
                }
                if r.kind == "step-finished" {
                    r.data.insert("outputs".into(), json!({ evil: evil }));
                }
            }
            enrich(
                records,
                json!(evil),
                Some(json!({"state": evil, "summary": evil,
                "checks": [{"step": evil, "status": evil, "detail": evil}],
                "time_to_containment_ms": 10, "at": evil})),
            );
        },
    );
    let html = report(&path, ReportFormat::Html);
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("]]>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x"));
    let md = report(&path, ReportFormat::Markdown);
    assert!(!md.contains("<script"), "{md}");
    assert!(!md.contains("<img"), "{md}");
}

#[test]
fn a_dry_run_without_a_containment_record_says_nothing_was_contained() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_edited(
        dir.path(),
        Ending::Success,
        "api-key-compromise",
        |records| {
            records[0].data.insert("mode".into(), "dry-run".into());
        },
    );
    let md = report(&path, ReportFormat::Markdown);
    assert!(
        md.contains("as a dry run against https://esus.example (no change was sent)"),
        "{md}"
    );
    assert!(
        md.contains("A dry run changes nothing, so nothing was contained."),
        "{md}"
    );
    assert!(
        md.contains("| Time to containment | not applicable (dry run: nothing was changed) |"),
        "{md}"
    );
    let html = report(&path, ReportFormat::Html);
    assert!(html.contains(">DRY RUN</span>"), "{html}");
    assert!(!html.contains("contained (estimate)"), "{html}");
}
