//! A reader for OpenSSH `allowed_signers` files (see ssh-keygen(1), "ALLOWED SIGNERS").
//!
//! `verify --allowed-signers` must trust exactly the keys `ssh-keygen -Y verify` would, so this
//! follows the same grammar: `principals [options] keytype base64 [comment]`, principals and
//! namespaces as comma-separated patterns (`*`, `?`, `!negation`). Certificate authorities
//! (`cert-authority`) are skipped: transcripts are signed with plain keys. `valid-after` and
//! `valid-before` are not checked (SSHSIG carries no signing time to check them against).

use ssh_key::PublicKey;

/// One usable line of an allowed_signers file.
#[derive(Debug, Clone)]
pub struct AllowedSigner {
    /// 1-based line number in the file.
    pub line: usize,
    /// The principal patterns.
    pub principals: String,
    /// The `namespaces="…"` patterns, if restricted.
    pub namespaces: Option<String>,
    /// The trusted key.
    pub key: PublicKey,
}

impl AllowedSigner {
    /// Whether this entry lets `key` sign as `principal` in `namespace`.
    pub fn allows(&self, principal: &str, namespace: &str, key: &PublicKey) -> bool {
        self.key.key_data() == key.key_data()
            && pattern_list_matches(&self.principals, principal)
            && self
                .namespaces
                .as_deref()
                .is_none_or(|ns| pattern_list_matches(ns, namespace))
    }
}

/// Parses an allowed_signers file; lines that are not usable key entries are returned as
/// `(line, reason)` so the caller can mention them.
pub fn parse_allowed_signers(text: &str) -> (Vec<AllowedSigner>, Vec<(usize, String)>) {
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match parse_entry(trimmed) {
            Ok(Some((principals, namespaces, key))) => entries.push(AllowedSigner {
                line,
                principals,
                namespaces,
                key,
            }),
            Ok(None) => {}
            Err(reason) => skipped.push((line, reason)),
        }
    }
    (entries, skipped)
}

type Entry = (String, Option<String>, PublicKey);

fn parse_entry(line: &str) -> Result<Option<Entry>, String> {
    let tokens = tokenize(line);
    let principals = tokens.first().ok_or("empty line")?.clone();
    let (options, rest) = match tokens.get(1) {
        Some(t) if looks_like_key_type(t) => (None, &tokens[1..]),
        Some(t) => (Some(t.as_str()), tokens.get(2..).unwrap_or(&[])),
        None => return Err("no key".into()),
    };
    let mut namespaces = None;
    for option in options.map(split_options).unwrap_or_default() {
        let lower = option.to_ascii_lowercase();
        if lower == "cert-authority" {
            return Ok(None);
        }
        if let Some(value) = lower.strip_prefix("namespaces=") {
            let start = option.len() - value.len();
            namespaces = Some(option[start..].trim_matches('"').to_string());
        }
    }
    if rest.len() < 2 {
        return Err("no key".into());
    }
    let key = PublicKey::from_openssh(&format!("{} {}", rest[0], rest[1]))
        .map_err(|e| format!("unreadable key: {e}"))?;
    Ok(Some((
        principals.trim_matches('"').to_string(),
        namespaces,
        key,
    )))
}

fn looks_like_key_type(token: &str) -> bool {
    ["ssh-", "ecdsa-", "sk-", "rsa-sha2-"]
        .iter()
        .any(|p| token.starts_with(p))
}

/// Splits on whitespace outside double quotes, keeping the quotes in the token.
fn tokenize(line: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// Splits an options field on commas outside double quotes.
fn split_options(options: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in options.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    parts
}

/// OpenSSH pattern lists: any positive match and no negated match.
fn pattern_list_matches(list: &str, name: &str) -> bool {
    let mut matched = false;
    for pattern in list.split(',').map(str::trim) {
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob(negated.as_bytes(), name.as_bytes()) {
                return false;
            }
        } else if glob(pattern.as_bytes(), name.as_bytes()) {
            matched = true;
        }
    }
    matched
}

fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], name) || (!name.is_empty() && glob(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => glob(&pattern[1..], &name[1..]),
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";

    #[test]
    fn parses_principals_options_and_key() {
        let text = format!(
            "# comment\n\nalice,bob namespaces=\"esus-ir-transcript,git\" {KEY} laptop\n\"carol\" {KEY}\n*@ops cert-authority {KEY}\nbroken line\n"
        );
        let (entries, skipped) = parse_allowed_signers(&text);
        assert_eq!(entries.len(), 2);
        assert_eq!(skipped.len(), 1);
        let key = PublicKey::from_openssh(KEY).unwrap();
        assert!(entries[0].allows("bob", "esus-ir-transcript", &key));
        assert!(!entries[0].allows("bob", "file", &key));
        assert!(!entries[0].allows("mallory", "esus-ir-transcript", &key));
        assert!(entries[1].allows("carol", "anything", &key));
    }

    #[test]
    fn patterns_support_wildcards_and_negation() {
        assert!(pattern_list_matches(
            "*@example.org,!eve@example.org",
            "al@example.org"
        ));
        assert!(!pattern_list_matches(
            "*@example.org,!eve@example.org",
            "eve@example.org"
        ));
        assert!(pattern_list_matches("op?", "op1"));
        assert!(!pattern_list_matches("op?", "op12"));
    }
}
