//! What the binary's integration tests share: a free port, a tiny HTTP client, a child process that dies
//! with the test.

/// A port nothing listens on right now.
#[allow(dead_code)] // not every test binary starts a server
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A tiny HTTP/1.1 client over a socket (no HTTP client dependency for tests): the status and the body as
/// JSON (or as a JSON string when it is not JSON). Bodies here are small: no chunked framing.
pub async fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    let answer = try_http(method, url, headers, body).await.unwrap();
    (answer.status, answer.body)
}

/// An answer of `try_http`.
#[derive(Debug)]
#[allow(dead_code)] // the relay tests read the headers
pub struct Answer {
    pub status: u16,
    /// Header lines as received, names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
}

#[allow(dead_code)]
impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Like `http`, with the headers, and an error instead of a panic when the server is not there (a test
/// that kills it retries).
pub async fn try_http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> std::io::Result<Answer> {
    try_http_text(method, url, headers, &body.map(|b| b.to_string()).unwrap_or_default()).await
}

/// Like `try_http`, with a body sent as it is (malformed JSON, say) as `application/json`.
pub async fn try_http_text(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Answer> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await?;
    // Read to the end of the body: `Content-Length` when the server sends one (some keep the connection
    // open despite `Connection: close`), else until it closes.
    let mut response = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..n]);
        let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        if length.is_some_and(|length| response.len() >= end + 4 + length) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&response);
    let broken = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no HTTP answer");
    let status: u16 = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(broken)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.to_string()));
    Ok(Answer { status, headers, body })
}

/// `GET url`.
#[allow(dead_code)] // not every test binary reads without headers
pub async fn get(url: &str) -> (u16, serde_json::Value) {
    http("GET", url, &[], None).await
}

/// A child process killed (and reaped) when the test ends, however it ends.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `gemgate serve --config CONFIG` as a child process, once it listens on `listen`.
#[allow(dead_code)] // the OpenAPI and view-call tests use it
pub async fn serve(config: &std::path::Path, listen: &str) -> KillOnDrop {
    let child = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_gemgate"))
            .args(["--log-filter", "warn", "serve", "--config", config.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while tokio::net::TcpStream::connect(listen).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "gemgate serve did not listen on {listen}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child
}

/// Whether `python3` can import `module` (an independent checker a test runs). Without it the test fails
/// under CI and is skipped, loudly, elsewhere: `false` means skip.
#[allow(dead_code)] // the metrics and OpenAPI tests use it; the other test binaries share this module
pub fn python_module_or_skip(test: &str, module: &str, package: &str) -> bool {
    let ready = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        assert!(
            !gemgate_testkit::under_ci(),
            "{test}: python3 with {package} is required (pip install {package})"
        );
        eprintln!(
            "SKIPPED {test}: python3 with {package} is not installed; set CI=true to make this a failure"
        );
    }
    ready
}

/// The schema `schema` names, following `$ref`s into the document's components.
fn resolve<'a>(document: &'a serde_json::Value, schema: &'a serde_json::Value) -> &'a serde_json::Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            resolve(document, &document["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// Every object in `value` (recursively) has only fields its schema declares, and every required one.
#[allow(dead_code)] // the OpenAPI and view-call tests use it
pub fn conforms(
    document: &serde_json::Value,
    schema: &serde_json::Value,
    value: &serde_json::Value,
    at: &str,
) -> Result<(), String> {
    let schema = resolve(document, schema);
    if let Some(options) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        return if options.iter().any(|o| conforms(document, o, value, at).is_ok()) {
            Ok(())
        } else {
            Err(format!("{at}: {value} matches none of {options:?}"))
        };
    }
    if let Some(all) = schema["allOf"].as_array() {
        // A flattened struct: the fields of every part together.
        let mut merged = serde_json::Map::new();
        let mut required = Vec::new();
        for part in all {
            let part = resolve(document, part);
            if let Some(properties) = part["properties"].as_object() {
                merged.extend(properties.clone());
            }
            required.extend(part["required"].as_array().cloned().unwrap_or_default());
        }
        let flat = serde_json::json!({"type": "object", "properties": merged, "required": required});
        return conforms(document, &flat, value, at);
    }
    match value {
        serde_json::Value::Object(fields) if schema["properties"].is_object() => {
            let properties = schema["properties"].as_object().unwrap();
            for (name, field) in fields {
                let Some(field_schema) = properties.get(name) else {
                    return Err(format!("{at}: field {name:?} is not in the schema ({properties:?})"));
                };
                conforms(document, field_schema, field, &format!("{at}.{name}"))?;
            }
            for name in
                schema["required"].as_array().into_iter().flatten().filter_map(serde_json::Value::as_str)
            {
                if !fields.contains_key(name) {
                    return Err(format!("{at}: required field {name:?} is missing"));
                }
            }
            Ok(())
        }
        serde_json::Value::Array(items) if schema["items"].is_object() => {
            for (i, item) in items.iter().enumerate() {
                conforms(document, &schema["items"], item, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The schema of the JSON answer `status` of `method path` in the document.
#[allow(dead_code)]
pub fn response_schema<'a>(
    document: &'a serde_json::Value,
    method: &str,
    path: &str,
    status: u16,
) -> &'a serde_json::Value {
    let response = &document["paths"][path][method]["responses"][status.to_string()];
    assert!(response.is_object(), "{method} {path}: no {status} response in the document");
    &response["content"]["application/json"]["schema"]
}

/// `gemgate demo` (one round of traffic) serving on `listen` until dropped, once it printed its summary;
/// `None` (the test skips, loudly) when anvil is unavailable outside CI. Its output is read to the end,
/// so it never writes into a closed pipe.
#[allow(dead_code)] // the OpenAPI and dashboard tests use it
pub async fn demo(test: &str, listen: &str, dir: &std::path::Path) -> Option<KillOnDrop> {
    use std::io::BufRead as _;
    if let Err(e) = gemgate_testkit::find_anvil().await {
        assert!(!gemgate_testkit::under_ci(), "anvil unavailable under CI: {e}");
        eprintln!("SKIPPED {test}: anvil unavailable ({e})");
        return None;
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gemgate"))
        .args([
            "--log-filter",
            "warn",
            "demo",
            "--rounds",
            "1",
            "--chain-port",
            "0",
            "--listen",
            listen,
            "--dir",
        ])
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let demo = KillOnDrop(child);
    let (tx, ready) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(tx) = tx.take_if(|_| line.starts_with("done in")) {
                let _ = tx.send(());
            }
        }
    });
    let summary = tokio::time::timeout(std::time::Duration::from_secs(180), ready).await;
    assert!(matches!(summary, Ok(Ok(()))), "the demo did not print its summary");
    Some(demo)
}

/// A database of its own on the test Postgres (`GEMGATE_TEST_POSTGRES_URL`, default the local server),
/// dropped with the test. `None` (skip, said loudly) when Postgres is unreachable outside CI.
#[allow(dead_code)] // the tests that need Postgres use it
pub struct TempPostgres {
    admin: String,
    pub name: String,
}

#[allow(dead_code)]
impl TempPostgres {
    pub async fn create(test: &str, prefix: &str) -> Option<TempPostgres> {
        use sqlx::{Connection as _, Executor as _};
        let admin = std::env::var("GEMGATE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".into());
        let mut connection = match sqlx::PgConnection::connect(&admin).await {
            Ok(connection) => connection,
            Err(e) if gemgate_testkit::under_ci() => panic!("Postgres unreachable under CI: {e}"),
            Err(e) => {
                eprintln!("SKIPPED {test}: Postgres unreachable ({e})");
                return None;
            }
        };
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("{prefix}_{}_{nanos}", std::process::id());
        connection.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
        Some(TempPostgres { admin, name })
    }

    /// The database's URL (the admin URL with its name), with `password` set when given.
    pub fn url_with_password(&self, password: Option<&str>) -> String {
        let mut url = url::Url::parse(&self.admin).unwrap();
        url.set_path(&format!("/{}", self.name));
        if let Some(password) = password {
            url.set_password(Some(password)).unwrap();
        }
        url.to_string()
    }

    pub fn url(&self) -> String {
        self.url_with_password(None)
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // WITH (FORCE) ends any connection a process of the test left.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                use sqlx::{Connection as _, Executor as _};
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = c.execute(sqlx::AssertSqlSafe(sql)).await;
                }
            });
        })
        .join();
    }
}

/// The `[[contracts]]` entry of a LogSpammer chain (name `spammer`, chain 31337), its ABI written into `dir`.
#[allow(dead_code)] // the tests that index a LogSpammer use it
pub fn spammer_contract(dir: &std::path::Path, chain: &gemgate_testkit::SyntheticChain) -> String {
    let abi = dir.join("LogSpammer.json");
    std::fs::write(&abi, gemgate_testkit::artifacts::Artifact::named("LogSpammer").unwrap().json).unwrap();
    format!(
        "[[contracts]]\nname = \"spammer\"\nchain = 31337\naddress = \"{}\"\nabi = [\"{}\"]\nstart_block = {}\n",
        chain.address,
        abi.display(),
        chain.start_block
    )
}

/// `gemgate index --config CONFIG` (warnings to the test's stderr), killed with the test.
#[allow(dead_code)]
pub fn index(config: &std::path::Path) -> KillOnDrop {
    KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_gemgate"))
            .args(["--log-filter", "warn", "index", "--config", config.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

#[allow(dead_code)] // the tests that deliver to a webhook use it
/// A webhook receiver: answers 204 to every POST and keeps what it got (head and body, as text).
pub async fn webhook_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let kept = got.clone();
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut reader = BufReader::new(read);
                loop {
                    let mut head = String::new();
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        head.push_str(&line);
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    kept.lock().unwrap().push(format!("{head}{}", String::from_utf8_lossy(&body)));
                    if write.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (url, got)
}
