//! Where a run's inputs come from at the command line: `--input`, `--inputs-file`,
//! `--secret-file`, the environment, and — on a terminal — a prompt for a required input nobody
//! gave (hidden for secrets). Secret inputs never come from argv.

use std::path::PathBuf;

use secrecy::SecretString;

use super::prompt::{ask_hidden, ask_line};
use crate::error::Error;
use crate::exec::shared::Interrupt;
use crate::plan::inputs::InputSources;

/// Values a drill supplies from its simulator's scenario.
#[derive(Debug, Default)]
pub(super) struct Supplied {
    /// Secret inputs (the scenario's leaked key, the compromised session's tokens).
    pub(super) secrets: Vec<(String, SecretString)>,
    /// Other inputs, used when the operator gave none.
    pub(super) defaults: Vec<(String, String)>,
}

/// The run's input sources.
pub(super) fn input_sources(
    inputs: &[String],
    inputs_file: Option<&PathBuf>,
    secret_files: &[String],
    interactive: bool,
    supplied: Supplied,
    interrupt: &Interrupt,
) -> Result<InputSources, Error> {
    // A Ctrl-C at one of these prompts answers "not given"; the caller sees the count and stops.
    let (i1, i2) = (interrupt.clone(), interrupt.clone());
    let mut given = Vec::new();
    for pair in inputs {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("--input `{pair}`: expected NAME=VALUE")))?;
        given.push((k.trim().to_string(), v.to_string()));
    }
    let mut files = Vec::new();
    for pair in secret_files {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("--secret-file `{pair}`: expected NAME=PATH")))?;
        files.push((k.trim().to_string(), PathBuf::from(v)));
    }
    for (k, v) in supplied.defaults {
        if !given.iter().any(|(n, _)| *n == k) {
            given.insert(0, (k, v));
        }
    }
    let secrets = supplied.secrets;
    Ok(InputSources {
        given,
        file: inputs_file.map(read_inputs_file).transpose()?,
        secret_files: files,
        env: Some(Box::new(move |name: &str| {
            secrets
                .iter()
                .find(|(n, _)| format!("ESUS_IR_INPUT_{}", n.to_ascii_uppercase()) == name)
                .map(|(_, v)| secrecy::ExposeSecret::expose_secret(v).to_string())
                .or_else(|| std::env::var(name).ok())
        })),
        prompt_secret: interactive.then(|| {
            Box::new(move |name: &str, description: &str, optional: bool| {
                if i1.count() > 0 {
                    return None;
                }
                let how = if optional {
                    "secret, hidden; optional — Enter skips it"
                } else {
                    "secret, hidden"
                };
                ask_hidden(&format!("{name} ({how}){}", about(description)), &i1)
                    .ok()
                    .flatten()
            }) as Box<dyn Fn(&str, &str, bool) -> Option<SecretString> + Send + Sync>
        }),
        prompt_text: interactive.then(|| {
            Box::new(move |name: &str, kind: &str, description: &str| {
                if i2.count() > 0 {
                    return None;
                }
                ask_line(
                    &format!("{name} ({kind}, required){}: ", about(description)),
                    &i2,
                )
                .ok()
                .flatten()
            }) as Box<dyn Fn(&str, &str, &str) -> Option<String> + Send + Sync>
        }),
    })
}

fn about(description: &str) -> String {
    if description.is_empty() {
        String::new()
    } else {
        format!(" — {description}")
    }
}

fn read_inputs_file(path: &PathBuf) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let value: serde_json::Value = serde_yaml::from_str(&text)
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    match value {
        serde_json::Value::Object(m) => Ok(m),
        _ => Err(Error::Usage(format!(
            "{}: expected a mapping of input names to values",
            path.display()
        ))),
    }
}
