//! Local keystores (`gemgate keys`): Ethereum JSON keystore v3 files (scrypt, AES-128-CTR), as geth writes
//! them, with the address in the file so it can be listed without the password. A key is created or
//! imported straight into an encrypted file; the secret is never printed and never written in plain text.

use std::path::{Path, PathBuf};

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;

/// A keystore file and the address it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    pub path: PathBuf,
    pub address: Address,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("the private key is not 32 bytes of hex")]
    BadKey,
    #[error("{path}: wrong password or damaged keystore")]
    Decrypt { path: PathBuf },
}

/// Refuses to overwrite a key that exists.
fn fresh(dir: &Path, name: Option<&str>) -> Result<(), KeyError> {
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
    match name.map(|n| dir.join(n)) {
        Some(path) if path.exists() => Err(file_error(&path, "exists already; choose another name")),
        _ => Ok(()),
    }
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> KeyError {
    KeyError::File { path: path.to_path_buf(), message: message.to_string() }
}

/// A new random key, encrypted with `password` into `dir` (created if missing) as the file `name` (else its
/// UUID).
pub fn create(dir: &Path, password: &[u8], name: Option<&str>) -> Result<KeyFile, KeyError> {
    fresh(dir, name)?;
    let (signer, uuid) = PrivateKeySigner::new_keystore(dir, &mut rand::thread_rng(), password, name)
        .map_err(|e| file_error(dir, e))?;
    Ok(KeyFile { path: dir.join(name.unwrap_or(&uuid)), address: signer.address() })
}

/// An existing key (`0x` and 64 hex digits, surrounding whitespace ignored), encrypted into `dir`.
pub fn import(
    dir: &Path,
    secret_hex: &str,
    password: &[u8],
    name: Option<&str>,
) -> Result<KeyFile, KeyError> {
    let secret = hex::decode(secret_hex.trim().trim_start_matches("0x")).map_err(|_| KeyError::BadKey)?;
    if secret.len() != 32 {
        return Err(KeyError::BadKey);
    }
    fresh(dir, name)?;
    let (signer, uuid) =
        PrivateKeySigner::encrypt_keystore(dir, &mut rand::thread_rng(), &secret, password, name)
            .map_err(|_| KeyError::BadKey)?;
    Ok(KeyFile { path: dir.join(name.unwrap_or(&uuid)), address: signer.address() })
}

/// The keystores in `dir` (files that are not keystores are skipped), by file name.
pub fn list(dir: &Path) -> Result<Vec<KeyFile>, KeyError> {
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| file_error(dir, e))? {
        let path = entry.map_err(|e| file_error(dir, e))?.path();
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        let address =
            json.get("address").and_then(|a| a.as_str()).map(|a| format!("0x{}", a.trim_start_matches("0x")));
        if let (Some(address), Some(_)) = (address.and_then(|a| a.parse().ok()), json.get("crypto")) {
            keys.push(KeyFile { path, address });
        }
    }
    keys.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(keys)
}

/// Decrypts a keystore into a signer.
pub fn open(path: &Path, password: &[u8]) -> Result<PrivateKeySigner, KeyError> {
    PrivateKeySigner::decrypt_keystore(path, password)
        .map_err(|_| KeyError::Decrypt { path: path.to_path_buf() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// anvil's first account.
    const ANVIL_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    #[test]
    fn created_and_imported_keys_list_and_open_only_with_their_password() {
        let dir = tempfile::tempdir().unwrap();
        let created = create(dir.path(), b"pw-1", Some("ops")).unwrap();
        let imported = import(dir.path(), ANVIL_KEY, b"pw-2", Some("anvil")).unwrap();
        assert_eq!(
            imported.address,
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".parse::<Address>().unwrap()
        );
        std::fs::write(dir.path().join("notes.txt"), "not a keystore").unwrap();
        let listed = list(dir.path()).unwrap();
        assert_eq!(
            listed,
            vec![imported.clone(), created.clone()],
            "sorted by file name; other files skipped"
        );

        assert_eq!(open(&created.path, b"pw-1").unwrap().address(), created.address);
        assert!(matches!(open(&created.path, b"wrong"), Err(KeyError::Decrypt { .. })));
        let text = std::fs::read_to_string(&imported.path).unwrap();
        assert!(!text.contains(&ANVIL_KEY[2..]), "the key is never stored in plain text");
        assert!(text.contains("scrypt"));
        assert!(matches!(import(dir.path(), "0x1234", b"pw", None), Err(KeyError::BadKey)));
        assert!(create(dir.path(), b"pw", Some("ops")).is_err(), "an existing key is never overwritten");
        assert_eq!(open(&created.path, b"pw-1").unwrap().address(), created.address);
    }
}
