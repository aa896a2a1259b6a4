//! The operator dashboard in a real browser: headless Chromium driven through WebDriver (Debian's
//! `chromium-driver`) opens `/` on a running `gemgate demo`, and the test checks that the numbers shown are
//! those of `/v1/status`, that pausing and resuming a sink from the page changes `/v1/sinks` (with the
//! admin key typed into the page), that the page logged no JavaScript error, and saves a screenshot
//! (`GEMGATE_DASHBOARD_SCREENSHOT=path` keeps a copy there).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{KillOnDrop, free_port, get, http};

const ADMIN_KEY: &str = "gemgate-demo-admin-key";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `chromedriver` as the environment gives it (`GEMGATE_TEST_CHROMEDRIVER`, else on PATH).
fn chromedriver() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("GEMGATE_TEST_CHROMEDRIVER") {
        return Some(path.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join("chromedriver")).find(|p| p.is_file())
}

struct Browser {
    base: String,
}

impl Browser {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = http(method, &format!("{}{path}", self.base), &[], body.as_ref()).await;
        assert_eq!(status, 200, "WebDriver {method} {path}: {answer}");
        answer["value"].clone()
    }

    async fn script(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    async fn text(&self, selector: &str) -> String {
        let script =
            format!("const e = document.querySelector({selector:?}); return e ? e.textContent : null;");
        self.script(&script).await.as_str().unwrap_or_default().to_string()
    }

    async fn element(&self, selector: &str) -> String {
        let found =
            self.call("POST", "/element", Some(json!({"using": "css selector", "value": selector}))).await;
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {selector}: {found}")).to_string()
    }

    /// Clicks `selector`, finding it again if the page rebuilt it in between.
    async fn click(&self, selector: &str) {
        for _ in 0..5 {
            let id = self.element(selector).await;
            let url = format!("{}/element/{id}/click", self.base);
            let (status, answer) = http("POST", &url, &[], Some(&json!({}))).await;
            if status == 200 {
                return;
            }
            assert_eq!(answer["value"]["error"], "stale element reference", "click {selector}: {answer}");
        }
        panic!("{selector} kept being replaced");
    }

    /// Waits until the page's `selector` reads `expected`.
    async fn wait_text(&self, selector: &str, expected: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text(selector).await;
            if text == expected {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{selector} shows {text:?}, not {expected:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn sink_paused(api: &str, name: &str) -> bool {
    let (_, sinks) = get(&format!("{api}/v1/sinks")).await;
    sinks["sinks"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()["paused"]
        .as_bool()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_status_pauses_a_sink_and_logs_no_error() {
    let test = "the_dashboard_shows_the_status_pauses_a_sink_and_logs_no_error";
    let Some(driver) = chromedriver() else {
        assert!(
            !gemgate_testkit::under_ci(),
            "{test}: chromedriver is missing (install Debian's chromium-driver)"
        );
        return eprintln!("SKIPPED {test}: chromedriver is missing (install Debian's chromium-driver)");
    };
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let Some(_demo) = support::demo(test, &listen, dir.path()).await else { return };
    let api = format!("http://{listen}");

    let port = free_port();
    let _driver = KillOnDrop(
        std::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let chromium = std::env::var("GEMGATE_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let capabilities = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": chromium, "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1300", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"
        ]},
        "goog:loggingPrefs": {"browser": "ALL"}
    }}});
    let (status, session) =
        http("POST", &format!("http://127.0.0.1:{port}/session"), &[], Some(&capabilities)).await;
    assert_eq!(status, 200, "a browser session: {session}");
    let id = session["value"]["sessionId"].as_str().unwrap();
    let browser = Browser { base: format!("http://127.0.0.1:{port}/session/{id}") };
    browser.call("POST", "/url", Some(json!({"url": format!("{api}/")}))).await;

    // The numbers shown are the API's.
    let (_, status) = get(&format!("{api}/v1/status")).await;
    let chain = &status["chains"][0];
    let chain_id = chain["chain_id"].as_u64().unwrap();
    for field in ["indexed", "head", "events"] {
        browser.wait_text(&format!("#chain-{chain_id}-{field}"), &chain[field].to_string()).await;
    }
    let sink = &status["sinks"][0];
    let name = sink["name"].as_str().unwrap();
    browser.wait_text(&format!("#sink-{name}-position"), &sink["position"].to_string()).await;
    browser.wait_text(&format!("#sink-{name}-dead-letters"), &sink["dead_letters"].to_string()).await;
    assert!(browser.text("#updated").await.starts_with("updated"), "the page refreshed itself");
    assert!(!browser.text("#transactions tbody").await.is_empty(), "the demo's transactions are listed");

    // Without a key, pausing is refused and the page says so; with the admin key typed in, it pauses.
    browser.click(&format!("#sink-{name}-pause")).await;
    browser.wait_text("#error", &format!("pause {name}: send Authorization: Bearer <api key>")).await;
    assert!(!sink_paused(&api, name).await);
    let key = browser.element("#key").await;
    browser.call("POST", &format!("/element/{key}/value"), Some(json!({"text": ADMIN_KEY}))).await;
    browser.click("#key-save").await;
    browser.click(&format!("#sink-{name}-pause")).await;
    browser.wait_text(&format!("#sink-{name}-state"), "paused").await;
    assert!(sink_paused(&api, name).await, "/v1/sinks shows the sink paused from the page");

    let (status, png) = http("GET", &format!("{}/screenshot", browser.base), &[], None).await;
    assert_eq!(status, 200);
    let png = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(png["value"].as_str().unwrap()).unwrap()
    };
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(dir.path().join("dashboard.png"), &png).unwrap();
    if let Ok(path) = std::env::var("GEMGATE_DASHBOARD_SCREENSHOT") {
        std::fs::write(path, &png).unwrap();
    }

    browser.click(&format!("#sink-{name}-resume")).await;
    browser.wait_text(&format!("#sink-{name}-state"), "delivering").await;
    assert!(!sink_paused(&api, name).await, "resumed from the page");

    // No JavaScript error in the browser's log (the refused pause is the page's own message, not an error).
    let log = browser.call("POST", "/se/log", Some(json!({"type": "browser"}))).await;
    let severe: Vec<&Value> =
        log.as_array().unwrap().iter().filter(|e| e["level"] == "SEVERE" && !is_refused_fetch(e)).collect();
    assert!(severe.is_empty(), "JavaScript errors: {severe:?}");
    http("DELETE", &browser.base, &[], None).await;
}

/// The browser logs a failed fetch (the 401 of the keyless pause) as an error of the network, not of the
/// page's script.
fn is_refused_fetch(entry: &Value) -> bool {
    entry["message"].as_str().is_some_and(|m| m.contains("/pause") && m.contains("401"))
}
