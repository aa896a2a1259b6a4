//! gemgate's configuration: one TOML file plus `GEMGATE__SECTION__KEY` environment overrides, read once at
//! start and validated into typed values (`Settings`) before any task starts. Secrets named by the file
//! (`*_env`, `*_file`) are read here and held as `Secret`s that never print.
//!
//! This is the only crate that reads the process environment. It does no network I/O.

mod abi;
mod env;
mod raw;
mod secret;
mod settings;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use abi::parse_abi;
pub use env::PREFIX as ENV_PREFIX;
pub use secret::{Secret, SecretUrl};
pub use settings::*;
pub use validate::{DEFAULT_CONFIRMATIONS, DEFAULT_DATABASE_URL, DEFAULT_LISTEN};

/// One thing wrong with the configuration, and the key it concerns (`sinks[1].kind`, or the name of an
/// environment variable for a bad override).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The individual problems (one for a read or syntax error).
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ConfigError::Invalid(problems) => problems.clone(),
            other => vec![Problem { key: "(file)".into(), message: other.to_string() }],
        }
    }
}

fn list(problems: &[Problem]) -> String {
    let mut out = format!("{} problem(s) in the configuration:", problems.len());
    for p in problems {
        out.push_str(&format!("\n  {p}"));
    }
    out
}

/// Loads settings from an optional file and the process environment.
pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    load_with_env(file, &env)
}

/// Loads settings from an optional file and the given environment (tests pass their own).
pub fn load_with_env(file: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Settings, ConfigError> {
    let (text, base_dir) = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            (text, base)
        }
        None => (String::new(), PathBuf::from(".")),
    };
    load_str(&text, file.unwrap_or(Path::new("(defaults)")), &base_dir, env)
}

/// A TOML syntax error by line and column, without the snippet of the file the parser quotes: the line
/// may hold a secret (a database URL with its password, say), and the message reaches logs and terminals.
fn syntax_message(text: &str, error: &toml::de::Error) -> String {
    let reason = error.message().trim_end_matches('\n');
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("TOML parse error at line {line}, column {column}: {reason}")
        }
        None => format!("TOML parse error: {reason}"),
    }
}

/// Loads settings from TOML text; relative paths in it resolve against `base_dir`.
pub fn load_str(
    text: &str,
    origin: &Path,
    base_dir: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Settings, ConfigError> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
        path: origin.to_path_buf(),
        message: syntax_message(text, &e),
    })?;
    let override_problems = env::apply_overrides(&mut table, env);
    if !override_problems.is_empty() {
        return Err(ConfigError::Invalid(override_problems));
    }
    let raw: raw::RawSettings = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::Invalid(vec![Problem { key, message: e.into_inner().to_string() }])
    })?;
    let base_dir = if base_dir.as_os_str().is_empty() { Path::new(".") } else { base_dir };
    validate::validate(&raw, &validate::Context { base_dir, env }).map_err(ConfigError::Invalid)
}

impl Settings {
    /// The effective configuration as TOML with every secret redacted, for `gemgate config check`.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }
}
