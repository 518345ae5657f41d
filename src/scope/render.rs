//! The scope for people: text for the responder, CSV for the privacy officer (one row per record
//! touched, RFC 4180 quoting), JSON for tools.

use std::fmt::Write as _;

use super::Scope;

/// The scope as text.
pub fn text(s: &Scope) -> String {
    let mut out = String::new();
    let broken = s
        .source_chain
        .as_ref()
        .filter(|c| !c.ok || !c.breaks.is_empty());
    // A broken chain at the source comes before anything the rows say.
    if let Some(c) = broken {
        let _ = writeln!(
            out,
            "ESUS'S AUDIT CHAIN IS BROKEN ({}): {} break(s), first at row {} ({}) — rows at the source were altered; this scope cannot rest on them",
            c.file,
            c.breaks.len(),
            c.breaks.first().map_or("?", |b| b.id.as_str()),
            c.breaks.first().map_or("?", |b| b.recorded.as_str())
        );
    }
    let _ = writeln!(
        out,
        "Breach scope of user {}: {} → {} ({} to {})",
        s.user_id,
        s.window.from.as_deref().unwrap_or("no access found"),
        s.window.to.as_deref().unwrap_or("?"),
        match s.window.from_source {
            "marked" => "from the time marked",
            _ => "from its first access",
        },
        match (s.window.to_source, &s.window.not_covered) {
            ("containment", _) => "the proven containment",
            (_, Some(_)) => "the end of the evidence, before the proven containment",
            _ => "the end of the evidence — containment was NOT proven",
        }
    );
    if !s.sources_marked.is_empty() {
        let _ = writeln!(
            out,
            "only rows from {} (the addresses marked as the attacker's)",
            s.sources_marked.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "evidence: {} file{}, {} distinct rows, {} of this user in the window{}",
        s.evidence.len(),
        if s.evidence.len() == 1 { "" } else { "s" },
        s.rows_read,
        s.rows_in_window,
        match (
            s.evidence_complete,
            s.evidence.iter().filter(|e| !e.complete).count()
        ) {
            (false, _) => " — NOT covered by a complete pull: rows may be missing".to_string(),
            (true, 0) => String::new(),
            (true, n) => format!(
                " ({n} pull{} cut short: {} rows counted, once, beside a complete pull)",
                if n == 1 { "" } else { "s" },
                if n == 1 { "its" } else { "their" }
            ),
        }
    );
    match (&s.source_chain, broken) {
        (_, Some(_)) => {}
        (Some(c), None) => {
            let _ = writeln!(
                out,
                "ESUS's audit chain: intact, {} of {} rows verified ({})",
                c.verified_through, c.total, c.file
            );
        }
        (None, None) => {
            let _ = writeln!(
                out,
                "ESUS's audit chain: not checked by this incident (an audit.verify_chain step, run as a system administrator, records it)"
            );
        }
    }
    if let Some(gap) = &s.window.not_covered {
        let _ = writeln!(
            out,
            "NOT COVERED by the evidence: {gap} — the pull ended before containment was proven; pull the audit log again (a resumed run does) to cover it"
        );
    }
    if !s.after_containment.is_empty() {
        let _ = writeln!(
            out,
            "\nAFTER CONTAINMENT: {} row{} of this user — the credential still acted:",
            s.after_containment.len(),
            if s.after_containment.len() == 1 {
                ""
            } else {
                "s"
            }
        );
        for m in &s.after_containment {
            let _ = writeln!(out, "  {}  {} {}  {}", m.at, m.kind, m.outcome, target(m));
        }
    }
    let _ = writeln!(out, "\nPatients ({}):", s.patients.len());
    for p in &s.patients {
        let _ = writeln!(
            out,
            "  {}  {}  read {}, written {}, exported {}{}{}  {} → {}",
            p.patient_id,
            p.resource_types.join(","),
            p.counts.reads,
            p.counts.writes,
            p.counts.exports,
            if p.counts.emergency_overrides > 0 {
                format!(
                    ", {} under emergency override",
                    p.counts.emergency_overrides
                )
            } else {
                String::new()
            },
            if p.counts.failed > 0 {
                format!(", {} failed", p.counts.failed)
            } else {
                String::new()
            },
            p.counts.first,
            p.counts.last
        );
    }
    if !s.searches_without_patient.is_empty() {
        let _ = writeln!(
            out,
            "\nSearches that name no patient ({}): which patients they returned is not in the audit log — the patient list may be short by their results:",
            s.searches_without_patient.len()
        );
        for m in &s.searches_without_patient {
            let _ = writeln!(out, "  {}  {} {}  {}", m.at, m.kind, m.outcome, target(m));
        }
    }
    list(&mut out, "Bulk exports", &s.exports);
    list(&mut out, "Emergency overrides", &s.emergency_overrides);
    list(&mut out, "Failed attempts", &s.failures);
    if !s.own_checks.is_empty() {
        let _ = writeln!(
            out,
            "\n(not counted: {} row{} made by this incident's own checks, esus-ir presenting the credential while the run went on)",
            s.own_checks.len(),
            if s.own_checks.len() == 1 { "" } else { "s" }
        );
    }
    let _ = writeln!(out, "\nSources ({}):", s.sources.len());
    for src in &s.sources {
        let _ = writeln!(
            out,
            "  {}  {}  {} rows  {} → {}",
            src.ip, src.user_agent, src.rows, src.first, src.last
        );
    }
    out
}

fn list(out: &mut String, title: &str, items: &[super::Moment]) {
    let _ = writeln!(out, "\n{title} ({}):", items.len());
    for m in items {
        let _ = writeln!(out, "  {}  {} {}  {}", m.at, m.kind, m.outcome, target(m));
    }
}

fn target(m: &super::Moment) -> String {
    let mut t = match (&m.resource_type, &m.resource_id) {
        (Some(rt), Some(id)) => format!("{rt}/{id}"),
        (Some(rt), None) => format!("{rt} (search)"),
        _ => String::new(),
    };
    if let Some(p) = &m.patient_id
        && m.resource_type.as_deref() != Some("Patient")
    {
        let _ = write!(t, " of patient {p}");
    }
    t
}

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 10] = [
    "patient_id",
    "resource_type",
    "resource_id",
    "reads",
    "writes",
    "exports",
    "emergency_overrides",
    "failed",
    "first_access",
    "last_access",
];

/// The scope as CSV: one line per record touched.
pub fn csv(s: &Scope) -> Result<Vec<u8>, String> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER).map_err(|e| e.to_string())?;
    for r in &s.records {
        let n = |v: usize| v.to_string();
        w.write_record([
            r.patient_id.clone().unwrap_or_default(),
            r.resource_type.clone(),
            r.resource_id.clone().unwrap_or_default(),
            n(r.counts.reads),
            n(r.counts.writes),
            n(r.counts.exports),
            n(r.counts.emergency_overrides),
            n(r.counts.failed),
            r.counts.first.clone(),
            r.counts.last.clone(),
        ])
        .map_err(|e| e.to_string())?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

/// The scope as JSON (`esus-ir schema --scope`).
pub fn json(s: &Scope) -> String {
    let mut text = serde_json::to_string_pretty(s).unwrap_or_default();
    text.push('\n');
    text
}
