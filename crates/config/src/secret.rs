//! `Secret`: a value that never prints. Debug, Display and Serialize all show `<redacted>`; the only way
//! to the value is `expose()`, which makes every use greppable.

use std::fmt;

use serde::{Serialize, Serializer};

#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret value. Never log or return what this gives you.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

/// A URL that may carry credentials (a password, an API key in the path or query): printed with those parts
/// masked. RPC providers put keys in paths (`/v2/<key>`), brokers put passwords in the user info.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(url::Url);

impl SecretUrl {
    pub fn new(url: url::Url) -> Self {
        Self(url)
    }

    /// The full URL, credentials included. Never log or return what this gives you.
    pub fn expose(&self) -> &url::Url {
        &self.0
    }

    pub fn scheme(&self) -> &str {
        self.0.scheme()
    }

    /// The URL with its password replaced by `***` and any path or query beyond `/` replaced by `/…`.
    pub fn redacted(&self) -> String {
        let url = &self.0;
        let mut out = format!("{}://", url.scheme());
        if !url.username().is_empty() {
            out.push_str(url.username());
            if url.password().is_some() {
                out.push_str(":***");
            }
            out.push('@');
        }
        out.push_str(url.host_str().unwrap_or(""));
        if let Some(port) = url.port() {
            out.push_str(&format!(":{port}"));
        }
        let has_path = !matches!(url.path(), "" | "/");
        if has_path || url.query().is_some() {
            out.push_str("/…");
        }
        out
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("0xdeadbeef".to_string());
        assert_eq!(format!("{secret:?} {secret}"), "<redacted> <redacted>");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"<redacted>\"");
    }

    #[test]
    fn urls_hide_passwords_and_path_keys() {
        let amqp = SecretUrl::new("amqp://guest:hunter2@127.0.0.1:5672/%2f".parse().unwrap());
        assert_eq!(amqp.redacted(), "amqp://guest:***@127.0.0.1:5672/…");
        let rpc = SecretUrl::new("https://eth.example.com/v2/SECRETKEY".parse().unwrap());
        assert!(!format!("{rpc} {rpc:?}").contains("SECRETKEY"));
        let plain = SecretUrl::new("http://127.0.0.1:8545".parse().unwrap());
        assert_eq!(plain.redacted(), "http://127.0.0.1:8545");
    }
}
