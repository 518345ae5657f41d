//! One post-mortem per incident: a run declined at a real prompt, resumed and stopped by Ctrl-C
//! at its prompt, then resumed to the end — `report DIR` shows every leg on one time axis from
//! the incident's start, every approval, decline and interruption, the time prompts were open,
//! each evidence file checked on disk, and the containment line inside the axis.

use std::path::Path;
use std::time::Duration;

use expectrl::Expect;
use serde_json::Value;

use crate::run_support::{Env, assert_code, output, text};

/// Every record of a transcript, parsed.
fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("transcript")
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect()
}

fn exit_code<S>(session: &mut expectrl::Session<expectrl::process::unix::UnixProcess, S>) -> i32 {
    match session.get_process().wait().expect("exit status") {
        expectrl::process::unix::WaitStatus::Exited(_, code) => code,
        other => panic!("unexpected end: {other:?}"),
    }
}

/// Waits at the delete prompt a moment (a person reading it), then types `answer`.
fn at_the_delete_prompt(session: &mut impl Expect) {
    session.expect("Delete API key").expect("delete prompt");
    session.expect("[y/N]").expect("its question");
    std::thread::sleep(Duration::from_millis(300));
}

/// Leg 1 approves the logout and declines the delete at real prompts (exit 3); leg 2 resumes
/// and is stopped by Ctrl-C at the delete prompt (130); leg 3 resumes unattended with --yes (0).
fn incident(env: &Env) {
    let (declined, interrupted) = tokio::task::block_in_place(|| {
        let mut s = expectrl::Session::spawn(env.std_cmd()).expect("spawn in a pty");
        s.set_expect_timeout(Some(Duration::from_secs(60)));
        s.expect("Log out the compromised session of user")
            .expect("logout prompt");
        std::thread::sleep(Duration::from_millis(300));
        s.send_line("y").expect("approve");
        at_the_delete_prompt(&mut s);
        s.send_line("n").expect("decline");
        s.expect(expectrl::Eof).expect("leg 1 ends");
        let declined = exit_code(&mut s);

        let mut resume = env.std_env_cmd();
        resume.arg("run").arg("--resume").arg(env.run_dir());
        let mut s = expectrl::Session::spawn(resume).expect("spawn in a pty");
        s.set_expect_timeout(Some(Duration::from_secs(60)));
        at_the_delete_prompt(&mut s);
        s.send(expectrl::ControlCode::EndOfText).expect("Ctrl-C");
        s.expect(expectrl::Eof).expect("leg 2 ends");
        (declined, exit_code(&mut s))
    });
    assert_eq!((declined, interrupted), (3, 130));
    let out = env.resume_cmd().output().expect("leg 3");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

async fn report(env: &Env, format: &str) -> String {
    let mut cmd = env.bare_cmd();
    cmd.arg("report")
        .arg(env.run_dir())
        .args(["--format", format]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    text(&out.stdout)
}

/// The `(x1, x2)` of the axis line and `(x, label x, anchor, label)` of the containment mark, and
/// the picture's width.
fn svg_marks(html: &str) -> ((i64, i64), (i64, i64, String, String), i64) {
    let attr = |tag: &str, name: &str| -> String {
        let at = tag
            .find(&format!(" {name}=\""))
            .unwrap_or_else(|| panic!("{name} in {tag}"));
        let rest = &tag[at + name.len() + 3..];
        rest[..rest.find('"').expect("closing quote")].to_string()
    };
    let num = |s: String| -> i64 { s.parse().unwrap_or_else(|e| panic!("{s}: {e}")) };
    let axis = &html[html.find("<line class=\"axis\"").expect("the axis")..];
    let axis = &axis[..axis.find("/>").expect("end of the axis")];
    let mark = &html[html
        .find("<g class=\"containment\">")
        .expect("the containment mark")..];
    let mark = &mark[..mark.find("</g>").expect("end of the mark")];
    let line = &mark[mark.find("<line").expect("its line")..];
    let label = &mark[mark.find("<text").expect("its label")..];
    let words = label
        [label.find('>').expect("label text") + 1..label.find("</text>").expect("end")]
        .to_string();
    let svg = &html[html.find("<svg").expect("svg")..];
    let view = attr(&svg[..svg.find('>').expect("svg tag")], "viewBox");
    let width = num(view.split(' ').nth(2).expect("width").to_string());
    (
        (num(attr(axis, "x1")), num(attr(axis, "x2"))),
        (
            num(attr(line, "x1")),
            num(attr(label, "x")),
            attr(label, "text-anchor"),
            words,
        ),
        width,
    )
}

fn find<'a>(list: &'a [Value], what: impl Fn(&Value) -> bool, said: &str) -> &'a Value {
    list.iter()
        .find(|v| what(v))
        .unwrap_or_else(|| panic!("{said} in {list:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_of_a_folder_is_every_leg_on_one_axis_with_its_decisions_and_evidence() {
    let env = Env::start().await;
    incident(&env);
    let dir = env.run_dir();
    let first = records(&dir.join("transcript.jsonl"));
    let last = records(&dir.join("transcript.3.jsonl"));

    let doc: Value = serde_json::from_str(&report(&env, "json").await).expect("JSON report");
    let legs = doc["legs"].as_array().expect("legs");
    let summary: Vec<(&str, &str, u64)> = legs
        .iter()
        .map(|l| {
            (
                l["file"].as_str().unwrap_or_default(),
                l["outcome"].as_str().unwrap_or_default(),
                l["exit_code"].as_u64().unwrap_or(999),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("transcript.jsonl", "declined", 3),
            ("transcript.2.jsonl", "interrupted", 130),
            ("transcript.3.jsonl", "success", 0)
        ]
    );
    // One axis: from the first leg's start, each leg after the one before.
    assert_eq!(doc["started"], first[0]["ts"]);
    assert_eq!(legs[0]["start_ms"], 0);
    for w in legs.windows(2) {
        assert!(
            w[0]["end_ms"].as_i64() <= w[1]["start_ms"].as_i64(),
            "{w:#?}"
        );
    }
    let end = doc["axis"]["end_ms"].as_i64().expect("axis end");
    assert_eq!(legs[2]["end_ms"].as_i64(), Some(end));

    // Who approved and declined what, when, with which digest; and the Ctrl-C.
    let decisions = doc["decisions"].as_array().expect("decisions");
    let logout_digest = find(
        &first,
        |r| r["type"] == "confirmation" && r["data"]["step"] == "logout",
        "the logout's approval",
    )["data"]["request_sha256"]
        .clone();
    let approved = find(
        decisions,
        |d| d["leg"] == 1 && d["step"] == "logout",
        "the logout",
    );
    assert_eq!(approved["decision"], "approved");
    assert_eq!(approved["how"], "interactive");
    assert_eq!(approved["by"], "oncall@example.org at the prompt");
    assert_eq!(approved["request_sha256"], logout_digest);
    let declined = find(
        decisions,
        |d| d["leg"] == 1 && d["step"] == "delete",
        "the decline",
    );
    assert_eq!(declined["decision"], "declined");
    let interrupted = find(
        decisions,
        |d| d["leg"] == 2 && d["step"] == "delete",
        "the Ctrl-C",
    );
    assert_eq!(interrupted["decision"], "interrupted");
    let resumed = find(
        decisions,
        |d| d["leg"] == 3 && d["step"] == "delete",
        "the delete's approval",
    );
    assert_eq!(
        (resumed["decision"].as_str(), resumed["how"].as_str()),
        (Some("approved"), Some("assume-yes"))
    );
    // The prompts were open while a person read them: time apart from working.
    for d in [approved, declined, interrupted] {
        let waited = d["at_ms"].as_i64().unwrap_or(0) - d["asked_ms"].as_i64().unwrap_or(0);
        assert!(waited >= 250, "{waited} ms at {d:#}");
    }
    assert!(resumed["asked_ms"].is_null(), "--yes asks nobody");
    let waiting = doc["time"]["waiting_for_a_person_ms"].as_i64().unwrap_or(0);
    assert!(waiting >= 750, "{waiting} ms waiting");
    assert!(doc["time"]["working_ms"].as_i64().unwrap_or(0) > 0);

    // The audit log the last leg saved, with its digest, checked against the file.
    let pulled = find(&last, |r| r["type"] == "audit-evidence", "the audit pull");
    let evidence = doc["evidence"].as_array().expect("evidence");
    let audit = find(
        evidence,
        |e| e["file"] == pulled["data"]["file"],
        "the audit file",
    );
    assert_eq!(audit["sha256"], pulled["data"]["sha256"]);
    assert_eq!(audit["check"], "ok");
    assert_eq!(audit["leg"], 3);

    // Containment: proven in leg 3, counted from the incident's start, inside the axis.
    let recorded = find(&last, |r| r["type"] == "containment", "containment")["data"]
        ["time_to_containment_ms"]
        .as_i64()
        .expect("contained");
    let c = &doc["containment"];
    assert_eq!(
        (c["state"].as_str(), c["leg"].as_u64()),
        (Some("contained"), Some(3))
    );
    assert_eq!(c["time_to_containment_ms"].as_i64(), Some(recorded));
    let at = c["at_ms"].as_i64().expect("on the axis");
    assert_eq!(at, recorded);
    assert!(
        legs[2]["start_ms"].as_i64() <= Some(at) && at <= end,
        "{at} of {end}"
    );

    let html = report(&env, "html").await;
    for needle in [
        "transcript.jsonl",
        "transcript.2.jsonl",
        "transcript.3.jsonl",
        ">leg 1: declined</text>",
        ">leg 2: interrupted</text>",
        ">leg 3: success</text>",
        "<g class=\"decision approved\">",
        "<g class=\"decision declined\">",
        "<g class=\"decision interrupted\">",
        "<rect class=\"wait\"",
        "audit-user-u-1001.json (",
        "after the incident&#39;s start (proven in leg 3)",
    ] {
        assert!(html.contains(needle), "{needle} in {html}");
    }
    assert_eq!(html.matches("<g class=\"leg\">").count(), 3);
    let evidence_row = &html[html.find("audit-user-u-1001.json (").expect("row")..];
    let evidence_row = &evidence_row[..evidence_row.find("</tr>").expect("row end")];
    assert!(evidence_row.ends_with("ok</td>"), "{evidence_row}");
    let ((x1, x2), (cx, tx, anchor, label), width) = svg_marks(&html);
    assert!(x1 < x2 && x2 <= width, "axis {x1}..{x2} in {width}");
    assert!(x1 <= cx && cx <= x2, "containment at {cx}, axis {x1}..{x2}");
    // The line sits where the JSON says, on the same axis (no pause here is long enough to be
    // drawn as a break).
    let expected = x1 + (x2 - x1) * at / end;
    assert!((cx - expected).abs() <= 1, "{cx} vs {expected}");
    // Its label is whole inside the picture (about 7 px a character at 12 px bold).
    let span = label.chars().count() as i64 * 7;
    match anchor.as_str() {
        "start" => assert!(tx + span <= width, "{tx} + {span} > {width}: {label}"),
        "end" => assert!(tx - span >= 0, "{tx} - {span} < 0: {label}"),
        other => panic!("anchor {other}"),
    }

    let md = report(&env, "markdown").await;
    assert!(
        md.contains(&format!(
            "Contained {}",
            esus_ir::transcript::report::model::human_duration(jiff::SignedDuration::from_millis(
                recorded
            ))
        )) && md.contains("after the incident's start (proven in leg 3)"),
        "{md}"
    );

    let mut verify = env.bare_cmd();
    verify.arg("verify").arg(&dir);
    let out = output(verify).await;
    assert_code(&out, 0);
    assert!(
        text(&out.stdout).contains(
            "(an incident of 3 legs: transcript.jsonl → transcript.2.jsonl → transcript.3.jsonl)"
        ),
        "{}",
        text(&out.stdout)
    );

    // The check is of the file on disk: changed, it is a mismatch; gone, it is missing.
    let file = dir
        .join("evidence")
        .join(audit["file"].as_str().unwrap_or_default());
    std::fs::write(&file, b"{\"rows\": []}").expect("overwrite");
    let doc: Value = serde_json::from_str(&report(&env, "json").await).expect("JSON");
    assert_eq!(doc["evidence"][0]["check"], "digest-mismatch", "{doc:#}");
    std::fs::remove_file(&file).expect("remove");
    let doc: Value = serde_json::from_str(&report(&env, "json").await).expect("JSON");
    assert_eq!(doc["evidence"][0]["check"], "missing", "{doc:#}");
}
