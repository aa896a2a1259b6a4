//! What the binary's integration tests share: a free port, a tiny HTTP client, a child process that dies
//! with the test.

/// A port nothing listens on right now.
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
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
    request.push_str(&body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.to_string())))
}

/// `GET url`.
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
