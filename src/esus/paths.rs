//! Rules for paths and file names that come from runbooks: a generic `http` call may never
//! leave ESUS's base URL, and a `save` name may never leave the evidence folder.

/// Checks a path for `http`, relative to the base URL. Returns why it is refused.
pub fn check_relative_path(path: &str) -> Result<(), String> {
    if path.trim().is_empty() {
        return Err("the path is empty".into());
    }
    if path.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("the path contains whitespace or control characters".into());
    }
    if has_scheme(path) {
        return Err("an absolute URL; give a path relative to the base URL".into());
    }
    if path.starts_with("//") || path.contains('\\') {
        return Err(
            "a network-path reference (`//host`) or backslash could leave the ESUS host".into(),
        );
    }
    if path.contains('?') || path.contains('#') {
        return Err("query strings and fragments go under `query`, not in the path".into());
    }
    if path.split('/').any(is_dot_segment) {
        return Err("`.` or `..` segments could leave the base URL".into());
    }
    Ok(())
}

/// Checks a `save` file name: relative, inside the evidence folder.
pub fn check_save_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("the file name is empty".into());
    }
    if name.chars().any(char::is_control) {
        return Err("the file name contains control characters".into());
    }
    if name.starts_with('/') || name.starts_with('~') || name.contains('\\') || has_scheme(name) {
        return Err("the file name must be relative to the evidence folder".into());
    }
    if name.split('/').any(is_dot_segment) || name.ends_with('/') {
        return Err(
            "`.`/`..` segments or a trailing `/` would leave or miss the evidence folder".into(),
        );
    }
    Ok(())
}

/// `scheme:` at the start (RFC 3986), which also catches `C:` drive letters.
fn has_scheme(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn is_dot_segment(seg: &str) -> bool {
    let decoded = seg.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_paths_that_leave_the_base_url_are_refused() {
        for bad in [
            "https://evil.example/x",
            "//evil.example/x",
            "../admin",
            "/a/%2E%2E/b",
            "a\\b",
            "x?y=1",
            "mailto:x",
            "/a b",
            "",
        ] {
            assert!(check_relative_path(bad).is_err(), "{bad}");
        }
        for good in ["/api-keys", "api-keys/k-1/rotate", "/fhir/Patient/p:1"] {
            assert!(check_relative_path(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn save_names_stay_inside_the_evidence_folder() {
        for bad in [
            "/etc/passwd",
            "../x.json",
            "a/../../x",
            "~/x",
            "C:x",
            "a\\b",
            "dir/",
            "",
        ] {
            assert!(check_save_name(bad).is_err(), "{bad}");
        }
        for good in ["audit.json", "audit/u-1001.json", "keys.v2.json"] {
            assert!(check_save_name(good).is_ok(), "{good}");
        }
    }
}
