//! The published JavaScript libraries the tests check gemgate against, so that a test of a standard never
//! uses gemgate's own code on both sides: the Standard Webhooks library (`standardwebhooks`), the
//! CloudEvents SDK (`cloudevents`) and `jose` (JWTs and JWKS); and a real Parse Server (`parse-server`). `crates/testkit/js` (package, lockfile, scripts) is embedded here and
//! installed with `npm ci` into the cache folder once per content (concurrent installs are safe: each
//! stages its own copy and the first rename wins).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::{Result, TestkitError};

const FILES: &[(&str, &str)] = &[
    ("package.json", include_str!("../js/package.json")),
    ("package-lock.json", include_str!("../js/package-lock.json")),
    ("webhook-receiver.mjs", include_str!("../js/webhook-receiver.mjs")),
    ("cloudevents-decode.mjs", include_str!("../js/cloudevents-decode.mjs")),
    ("jwt-issuer.mjs", include_str!("../js/jwt-issuer.mjs")),
    ("parse-server.mjs", include_str!("../js/parse-server.mjs")),
    ("ts-client.ts", include_str!("../js/ts-client.ts")),
];

/// The folder holding the scripts and their `node_modules`, installed on first use.
pub async fn tools() -> Result<PathBuf> {
    let mut digest = Sha256::new();
    for (name, text) in FILES {
        digest.update(name.as_bytes());
        digest.update(text.as_bytes());
    }
    let hash: String = digest.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect();
    let target = crate::anvil::cache_dir().join(format!("js-{hash}"));
    if target.join("node_modules").is_dir() {
        return Ok(target);
    }
    static INSTALLING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _guard = INSTALLING.lock().await;
    if target.join("node_modules").is_dir() {
        return Ok(target);
    }
    install(&target).await?;
    Ok(target)
}

async fn install(target: &Path) -> Result<()> {
    let parent = target.parent().unwrap_or(Path::new("."));
    let staging = parent.join(format!(".js-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(TestkitError::io("creating the install folder"))?;
    for (name, text) in FILES {
        std::fs::write(staging.join(name), text).map_err(TestkitError::io(format!("writing {name}")))?;
    }
    eprintln!("gemgate-testkit: installing the JavaScript reference libraries into {}", target.display());
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&staging)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| TestkitError::Js(format!("cannot run npm (is Node.js installed?): {e}")))?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(TestkitError::Js(String::from_utf8_lossy(&output.stderr).trim().to_string()));
    }
    if std::fs::rename(&staging, target).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    Ok(())
}

/// Decodes broker messages with the CloudEvents SDK: each input is `{"binding": "kafka", "headers",
/// "key", "value"}` or `{"binding": "http", "headers", "body"}`; each output `{"event": ...}` (the SDK's
/// CloudEvent as JSON) or `{"error": ...}`, in order.
pub async fn decode_cloudevents(messages: &[serde_json::Value]) -> Result<Vec<serde_json::Value>> {
    let dir = tools().await?;
    let mut child = Command::new("node")
        .arg(dir.join("cloudevents-decode.mjs"))
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| TestkitError::Js(format!("cannot run node: {e}")))?;
    let mut stdin = child.stdin.take().ok_or_else(|| TestkitError::Js("no stdin".into()))?;
    let input: String = messages.iter().map(|m| format!("{m}\n")).collect();
    let writing = tokio::spawn(async move {
        let _ = stdin.write_all(input.as_bytes()).await;
    });
    let output = child.wait_with_output().await.map_err(TestkitError::io("running the decoder"))?;
    let _ = writing.await;
    if !output.status.success() {
        return Err(TestkitError::Js(format!("the decoder exited with {}", output.status)));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).map_err(|e| TestkitError::Js(format!("decoder output: {e}"))))
        .collect()
}

/// A script of the test kit serving HTTP on a free loopback port (it prints `{"listening": port}` first),
/// with every later JSON line it prints collected. Killed on drop.
#[derive(Debug)]
pub struct NodeServer {
    port: u16,
    lines: Arc<Mutex<Vec<serde_json::Value>>>,
    _child: Child,
}

/// A receiver that verifies every request with the Standard Webhooks library (signatures by `secret`,
/// `whsec_...`) and decodes CloudEvents with the SDK's HTTP binding. Its lines: `{"path", "webhook_id",
/// "content_type", "body", "event"}` when a request verified (answered 204), `{"path", "refused"}` (401).
pub async fn webhook_receiver(secret: &str) -> Result<NodeServer> {
    NodeServer::start("webhook-receiver.mjs", &[secret]).await
}

/// A token issuer built on `jose`: RS256, ES256 and EdDSA keys (kids `rs`, `es`, `ed`) served as a JWKS at
/// `GET /jwks.json` (fetches counted at `GET /stats`), tokens signed on `POST /token` (`{"alg", "kid"?,
/// "claims", "rogue"?: true, "secret"?}`), `POST /rotate` adding an RS256 key `rs2`.
pub async fn jwt_issuer() -> Result<NodeServer> {
    NodeServer::start("jwt-issuer.mjs", &[]).await
}

/// Generates TypeScript types from the OpenAPI `document` with openapi-typescript, compiles the test kit's
/// client (`ts-client.ts`, openapi-fetch) against them with `tsc --strict` (a type error fails), and runs
/// it against `base_url` with the API key `key`; what it printed, as JSON.
pub async fn typescript_client(
    document: &serde_json::Value,
    base_url: &str,
    key: &str,
) -> Result<serde_json::Value> {
    let tools = tools().await?;
    // Inside the tools folder, so `openapi-fetch` resolves from its node_modules.
    let dir = tempfile::Builder::new()
        .prefix("ts-client-")
        .tempdir_in(&tools)
        .map_err(TestkitError::io("a work folder"))?;
    std::fs::write(dir.path().join("openapi.json"), document.to_string())
        .map_err(TestkitError::io("writing the document"))?;
    std::fs::copy(tools.join("ts-client.ts"), dir.path().join("ts-client.ts"))
        .map_err(TestkitError::io("copying the client"))?;
    let bin = tools.join("node_modules").join(".bin");
    let run = |program: PathBuf, args: Vec<String>| {
        let dir = dir.path().to_path_buf();
        async move {
            let output = Command::new(&program)
                .args(&args)
                .current_dir(&dir)
                .stdin(Stdio::null())
                .output()
                .await
                .map_err(|e| TestkitError::Js(format!("cannot run {}: {e}", program.display())))?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            if !output.status.success() {
                return Err(TestkitError::Js(format!("{} failed: {text}", program.display())));
            }
            Ok(String::from_utf8_lossy(&output.stdout).to_string())
        }
    };
    let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // The compiled client is an ES module (top-level await): its folder says so.
    std::fs::write(dir.path().join("package.json"), "{\"type\": \"module\"}")
        .map_err(TestkitError::io("package.json"))?;
    run(bin.join("openapi-typescript"), args(&["openapi.json", "-o", "schema.d.ts"])).await?;
    run(
        bin.join("tsc"),
        args(&[
            "--strict",
            "--noEmitOnError",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
            "--target",
            "es2022",
            "--skipLibCheck",
            "ts-client.ts",
        ]),
    )
    .await?;
    let out = run(PathBuf::from("node"), args(&["ts-client.js", base_url, key])).await?;
    serde_json::from_str(out.trim()).map_err(|e| TestkitError::Js(format!("the client printed {out:?}: {e}")))
}

/// A Parse Server (app id `gemgate-test`) on the Postgres database at `database_url`, mounted at `/parse`.
pub async fn parse_server(database_url: &str) -> Result<NodeServer> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(TestkitError::io("finding a free port"))?
        .port()
        .to_string();
    NodeServer::start("parse-server.mjs", &[database_url, &port]).await
}

impl NodeServer {
    async fn start(script: &str, args: &[&str]) -> Result<Self> {
        let dir = tools().await?;
        let mut child = Command::new("node")
            .arg(dir.join(script))
            .args(args)
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| TestkitError::Js(format!("cannot run node: {e}")))?;
        let stdout = child.stdout.take().ok_or_else(|| TestkitError::Js("no stdout".into()))?;
        let mut reader = BufReader::new(stdout).lines();
        // Other output (a library's warnings) may come first: the first `{"listening": port}` line counts.
        let started = async {
            while let Some(line) = reader.next_line().await.map_err(TestkitError::io("reading the script"))? {
                let port = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v["listening"].as_u64());
                if let Some(port) = port {
                    return Ok(port);
                }
            }
            Err(TestkitError::Js(format!("{script} exited before it listened")))
        };
        let port = tokio::time::timeout(std::time::Duration::from_secs(60), started)
            .await
            .map_err(|_| TestkitError::Js(format!("{script} did not start within 60 s")))??;
        let lines: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let sink = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(value) = serde_json::from_str(&line) {
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(value);
                }
            }
        });
        Ok(Self { port: port as u16, lines, _child: child })
    }

    /// `http://127.0.0.1:<port><path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every line printed so far.
    pub fn received(&self) -> Vec<serde_json::Value> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
