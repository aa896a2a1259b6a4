//! `gemgate keys new|import|list`: local keystores for `kind = "keystore"` signers. Secrets (the password,
//! an imported key) are read from an environment variable or a file, never from the command line, and never
//! printed.

use std::path::PathBuf;

use anyhow::{Context, bail};
use gemgate_txm::keys;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a random key in an encrypted keystore file; prints its address and path.
    New {
        #[command(flatten)]
        store: Store,
        #[command(flatten)]
        password: Password,
    },
    /// Encrypt an existing private key (0x and 64 hex digits) into a keystore file.
    Import {
        #[command(flatten)]
        store: Store,
        #[command(flatten)]
        password: Password,
        /// An environment variable holding the private key.
        #[arg(long, conflicts_with = "key_file", required_unless_present = "key_file")]
        key_env: Option<String>,
        /// A file holding only the private key.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// The keystores in the folder: address and file.
    List {
        /// The keystore folder.
        #[arg(long, default_value = "keys")]
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct Store {
    /// The keystore folder (created if missing).
    #[arg(long, default_value = "keys")]
    dir: PathBuf,
    /// The file name (default: a random UUID); an existing file is never overwritten.
    #[arg(long)]
    name: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Password {
    /// An environment variable holding the keystore password.
    #[arg(long, conflicts_with = "password_file", required_unless_present = "password_file")]
    password_env: Option<String>,
    /// A file holding only the keystore password.
    #[arg(long)]
    password_file: Option<PathBuf>,
}

/// A secret from an environment variable or a file (trailing newline and spaces trimmed).
fn secret(env: &Option<String>, file: &Option<PathBuf>, what: &str) -> anyhow::Result<String> {
    let value = match (env, file) {
        (Some(var), _) => {
            std::env::var(var).with_context(|| format!("the {what} variable {var} is not set"))?
        }
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the {what} file {}", path.display()))?,
        (None, None) => bail!("no {what} given"),
    };
    let value = value.trim().to_string();
    if value.is_empty() {
        bail!("the {what} is empty");
    }
    Ok(value)
}

pub fn run(command: &KeysCommand) -> anyhow::Result<()> {
    let created = match command {
        KeysCommand::New { store, password } => {
            let password = secret(&password.password_env, &password.password_file, "password")?;
            keys::create(&store.dir, password.as_bytes(), store.name.as_deref())?
        }
        KeysCommand::Import { store, password, key_env, key_file } => {
            let password = secret(&password.password_env, &password.password_file, "password")?;
            let key = secret(key_env, key_file, "private key")?;
            keys::import(&store.dir, &key, password.as_bytes(), store.name.as_deref())?
        }
        KeysCommand::List { dir } => {
            let found = keys::list(dir)?;
            if found.is_empty() {
                println!("no keystores in {}", dir.display());
            }
            for key in found {
                println!("{}  {}", key.address, key.path.display());
            }
            return Ok(());
        }
    };
    println!("{}  {}", created.address, created.path.display());
    Ok(())
}
