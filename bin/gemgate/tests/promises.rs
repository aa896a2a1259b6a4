//! What the README promises, checked through the binary: websocket heads in `gemgate run` (each block
//! indexed within a second with a 30 s poll, a node restart ridden out), the Diamond loupe check at start,
//! CORS for browser pages (a preflight, and headless Chromium calling the API from another origin), and
//! metrics for every part after the demo's traffic, read back with an independent OpenMetrics parser.

#[allow(dead_code)] // not every test binary uses every helper
mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gemgate_projections::gemforce::tables::{DIAMOND_FACETS, FACET_HISTORY};
use gemgate_store::SqlStore;
use gemgate_testkit::bindings::ClaimTopicsRegistryFacet;
use gemgate_testkit::{
    Anvil, AnvilOptions, anvil_or_skip, deploy_gemforce, find_anvil, replace_facet, under_ci,
};
use support::{KillOnDrop, free_port, get};

/// The tests of this file run one at a time: the websocket test holds each block to a second, which a
/// demo deploying and driving traffic beside it on two shared cores could make flaky.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The text of `GET /metrics`.
async fn metrics_text(base: &str) -> String {
    match get(&format!("{base}/metrics")).await {
        (200, serde_json::Value::String(text)) => text,
        other => panic!("/metrics answered {other:?}"),
    }
}

/// The value of the first sample of `metrics` whose line starts with `prefix` (name and labels).
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Waits until `GET /v1/status` reports chain 31337 indexed to at least `block`; the time it took.
async fn indexed(base: &str, block: u64, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = get(&format!("{base}/v1/status")).await;
        if status == 200 && body["chains"][0]["indexed"].as_u64() >= Some(block) {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "block {block} not indexed within {within:?}: {body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_for_port(listen: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(listen).await.is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {listen}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("gemgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn gemgate(args: &[&str], config: &Path) -> KillOnDrop {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gemgate"));
    command.args(args).arg("--config").arg(config).stdout(Stdio::null()).stderr(Stdio::null());
    KillOnDrop(command.spawn().unwrap())
}

/// `gemgate run` with `ws` and a 30 s poll: every block is indexed within a second of being mined, from
/// the websocket's pushed heads; anvil stopped and started again on the same port (with its chain kept in
/// a state file) is reconnected to, and nothing mined after it is missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_heads_index_each_block_within_a_second_across_a_node_restart() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let test = "websocket_heads_index_each_block_within_a_second_across_a_node_restart";
    let binary = match find_anvil().await {
        Ok(binary) => binary,
        Err(e) => {
            assert!(!under_ci(), "{test}: anvil unavailable: {e}");
            eprintln!("SKIPPED {test}: anvil is not available ({e}); set CI=true to make this a failure");
            return;
        }
    };
    // A fixed port, and the chain kept in a state file, so the node can come back as the same node.
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("anvil-state.json");
    let options = AnvilOptions {
        extra_args: vec!["--state".into(), state.display().to_string()],
        ..AnvilOptions::default()
    };
    let anvil = Anvil::start_binary(&binary, &options, port).await.unwrap();
    let deployment = deploy_gemforce(&anvil.provider(), anvil.accounts()[0]).await.unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = write_config(
        dir.path(),
        &format!(
            "[database]\nurl = \"sqlite://{db}\"\n[api]\nlisten = \"{listen}\"\n\
             [[chains]]\nid = 31337\nrpc = [\"{rpc}\"]\nws = [\"{ws}\"]\npoll_interval = \"30s\"\n\
             [[contracts]]\nname = \"gemforce\"\nchain = 31337\naddress = \"{diamond}\"\ndiamond = true\nstart_block = {start}\n",
            db = dir.path().join("ws.db").display(),
            rpc = anvil.endpoint(),
            ws = anvil.ws_endpoint(),
            diamond = deployment.diamond,
            start = deployment.start_block,
        ),
    );
    let _service = gemgate(&["run"], &config);
    let base = format!("http://{listen}");
    wait_for_port(&listen).await;
    indexed(&base, anvil.block_number().await.unwrap(), Duration::from_secs(60)).await;
    let connected =
        format!("gemgate_rpc_ws_connected{{chain_id=\"31337\",endpoint=\"{}\"}}", anvil.ws_endpoint());
    assert_eq!(sample(&metrics_text(&base).await, &connected), Some(1.0), "the subscription is up");

    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        anvil.mine(1).await.unwrap();
        let head = anvil.block_number().await.unwrap();
        slowest = slowest.max(indexed(&base, head, Duration::from_secs(1)).await);
    }

    // The node goes away and comes back on the same port with the same chain.
    let before_restart = anvil.block_number().await.unwrap();
    anvil.stop().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let anvil = Anvil::start_binary(&binary, &options, port).await.unwrap();
    assert_eq!(anvil.block_number().await.unwrap(), before_restart, "anvil kept its chain");
    let connects =
        format!("gemgate_rpc_ws_connects_total{{chain_id=\"31337\",endpoint=\"{}\"}}", anvil.ws_endpoint());
    let deadline = Instant::now() + Duration::from_secs(30);
    while sample(&metrics_text(&base).await, &connects) < Some(2.0) {
        assert!(Instant::now() < deadline, "no websocket reconnect:\n{}", metrics_text(&base).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sample(&metrics_text(&base).await, &connected), Some(1.0));
    indexed(&base, before_restart, Duration::from_secs(30)).await;

    // Blocks with events after the restart: each indexed within a second, none missed.
    let topics = ClaimTopicsRegistryFacet::new(deployment.diamond, anvil.provider());
    for topic in 0..5u64 {
        let receipt = topics
            .addClaimTopic(alloy::primitives::U256::from(9_000 + topic))
            .from(deployment.owner)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        let block = receipt.block_number.unwrap();
        slowest = slowest.max(indexed(&base, block, Duration::from_secs(1)).await);
    }
    let (_, page) =
        get(&format!("{base}/v1/events?event=ClaimTopicAdded&from_block={}", before_restart + 1)).await;
    let added: BTreeSet<String> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["args"]["claimTopic"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(added, (9_000..9_005).map(|t: u64| t.to_string()).collect(), "{page}");
    eprintln!("slowest block mined to indexed: {} ms", slowest.as_millis());
}

/// The facet table against the Diamond's loupe at start: a cut below the start block (never indexed) is
/// found and repaired from the loupe with `facet_history` rows saying so; a cut made while gemgate was
/// stopped (above its cursor) is not a difference: the indexer picks it up from its event on resuming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loupe_check_at_start_repairs_cuts_the_indexer_never_saw() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let test = "the_loupe_check_at_start_repairs_cuts_the_indexer_never_saw";
    let Some(anvil) = anvil_or_skip(test, AnvilOptions::default()).await.unwrap() else { return };
    let provider = anvil.provider();
    let deployment = deploy_gemforce(&provider, anvil.accounts()[0]).await.unwrap();
    let (below, cut_block) =
        replace_facet(&provider, deployment.diamond, deployment.owner, "TradeDealFacet").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("loupe.db");
    let config = write_config(
        dir.path(),
        &format!(
            "[database]\nurl = \"sqlite://{db}\"\n[[chains]]\nid = 31337\nrpc = [\"{rpc}\"]\n\
             [[contracts]]\nname = \"gemforce\"\nchain = 31337\naddress = \"{diamond}\"\ndiamond = true\nstart_block = {start}\n",
            db = db.display(),
            rpc = anvil.endpoint(),
            diamond = deployment.diamond,
            start = cut_block + 1,
        ),
    );
    let index_once = || {
        let out = Command::new(env!("CARGO_BIN_EXE_gemgate"))
            .args(["index", "--once", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    let loupe = || async {
        let source = gemgate_chain::EvmChain::new(
            31337,
            vec![(anvil.endpoint().parse().unwrap(), anvil.endpoint())],
            gemgate_chain::RetryPolicy::default(),
        );
        let facets = gemgate_chain::diamond_facets(&source, deployment.diamond, None).await.unwrap();
        facets
            .into_iter()
            .flat_map(|(facet, selectors)| {
                selectors.into_iter().map(move |s| (s.to_string(), facet.to_checksum(None)))
            })
            .collect::<BTreeSet<_>>()
    };
    let tables = || async {
        let store =
            SqlStore::connect(&format!("sqlite://{}", db.display()), 1, Default::default()).await.unwrap();
        let text = |row: &gemgate_projections::Row, c: &str| {
            row.get(c).and_then(|v| v.as_text()).unwrap_or_default().to_string()
        };
        let facets: BTreeSet<(String, String)> = store
            .contract_rows(&DIAMOND_FACETS, 31337, deployment.diamond)
            .await
            .unwrap()
            .iter()
            .map(|(_, row)| (text(row, "selector"), text(row, "facet")))
            .collect();
        let history: Vec<String> = store
            .contract_rows(&FACET_HISTORY, 31337, deployment.diamond)
            .await
            .unwrap()
            .iter()
            .map(|(_, row)| text(row, "action"))
            .collect();
        store.close().await;
        (facets, history)
    };

    // 1. Every cut happened below the start block: the table is built from the loupe.
    let stderr = index_once();
    assert!(stderr.contains("differs from the Diamond's loupe"), "{stderr}");
    let (facets, history) = tables().await;
    assert_eq!(facets, loupe().await, "the facet table equals the loupe");
    assert!(
        facets.iter().any(|(_, f)| *f == below.to_checksum(None)),
        "the replaced selectors point to the new facet"
    );
    let repairs = history.iter().filter(|a| *a == "loupe").count();
    assert!(repairs >= 1, "{history:?}");

    // 2. A cut while gemgate is stopped: above the cursor, so it comes from its event, not from a repair.
    let (upgraded, _) =
        replace_facet(&provider, deployment.diamond, deployment.owner, "TradeDealFacet").await.unwrap();
    let stderr = index_once();
    assert!(stderr.contains("facets match the Diamond's loupe"), "{stderr}");
    assert!(!stderr.contains("differs from the Diamond's loupe"), "{stderr}");
    let (facets, history) = tables().await;
    assert_eq!(facets, loupe().await);
    assert!(facets.iter().any(|(_, f)| *f == upgraded.to_checksum(None)));
    assert!(!facets.iter().any(|(_, f)| *f == below.to_checksum(None)), "no selector left on the old facet");
    assert_eq!(history.iter().filter(|a| *a == "loupe").count(), repairs, "no new repair: {history:?}");
    assert!(history.iter().any(|a| a == "replace"), "the cut's own event is in the history: {history:?}");

    // 3. Started again with nothing changed: nothing to repair.
    let stderr = index_once();
    assert!(stderr.contains("facets match the Diamond's loupe"), "{stderr}");
}

/// A raw HTTP exchange: the status and the response head's headers (lower-case names).
async fn exchange(method: &str, url: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Serves `page` to every request on a free port (the page's origin); returns the port.
async fn serve_page(page: String) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let page = page.clone();
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    port
}

/// A page that reads `/v1/status` and posts to `/v1/transactions` with a key (a preflighted request), and
/// writes what happened into `#out`.
fn cors_page(api: &str) -> String {
    format!(
        r#"<html><body><pre id="out">pending</pre><script>
const out = [];
fetch("{api}/v1/status").then(r => r.json()).then(s => out.push("read:" + s.chains.length))
  .catch(e => out.push("read:blocked"))
  .then(() => fetch("{api}/v1/transactions", {{method: "POST", headers: {{"Authorization": "Bearer k", "Content-Type": "application/json"}}, body: "{{}}"}}))
  .then(r => out.push("write:" + r.status), e => out.push("write:blocked"))
  .then(() => {{ document.getElementById("out").textContent = out.join(" "); }});
</script></body></html>"#
    )
}

/// Chromium as the environment gives it (`GEMGATE_TEST_CHROMIUM`, else `chromium` on PATH).
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("GEMGATE_TEST_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
}

/// Opens `url` in headless Chromium and returns the text of `#out` once the page's script has run.
fn page_result(chromium: &Path, url: &str, profile: &Path) -> String {
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    dom.split("<pre id=\"out\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_default()
        .to_string()
}

/// `api.cors_origins`: a configured origin may read and write (preflight answered, Authorization
/// allowed, credentials allowed); `*` lets any other page read but never write; without a listed origin
/// or `*` the browser's same-origin rule stands. Checked with raw preflights and from pages in Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_pages_on_other_origins_read_and_write_as_cors_origins_allow() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let test = "browser_pages_on_other_origins_read_and_write_as_cors_origins_allow";
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let api = format!("http://{listen}");
    // The allowed page's port is known before the API starts: bind it first.
    let allowed_port = serve_page(cors_page(&api)).await;
    let other_port = serve_page(cors_page(&api)).await;
    let allowed = format!("http://127.0.0.1:{allowed_port}");
    let other = format!("http://127.0.0.1:{other_port}");
    let config = write_config(
        dir.path(),
        &format!(
            "[database]\nurl = \"sqlite://{db}\"\n[api]\nlisten = \"{listen}\"\ncors_origins = [\"{allowed}\", \"*\"]\n",
            db = dir.path().join("cors.db").display()
        ),
    );
    let _service = gemgate(&["serve"], &config);
    wait_for_port(&listen).await;

    let preflight = |origin: &str, method: &str| {
        let (url, origin, method) =
            (format!("{api}/v1/transactions"), origin.to_string(), method.to_string());
        async move {
            exchange(
                "OPTIONS",
                &url,
                &[
                    ("Origin", &origin),
                    ("Access-Control-Request-Method", &method),
                    ("Access-Control-Request-Headers", "authorization, content-type"),
                ],
            )
            .await
        }
    };
    let (status, headers) = preflight(&allowed, "POST").await;
    assert_eq!(status, 204, "{headers:?}");
    assert_eq!(header(&headers, "access-control-allow-origin"), Some(allowed.as_str()));
    assert_eq!(header(&headers, "access-control-allow-credentials"), Some("true"));
    assert!(header(&headers, "access-control-allow-headers").unwrap().contains("authorization"));
    assert!(header(&headers, "access-control-allow-methods").unwrap().contains("POST"));
    let (status, headers) = preflight(&other, "POST").await;
    assert_eq!(status, 403, "a write from an unlisted origin: {headers:?}");
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
    let (status, headers) = preflight(&other, "GET").await;
    assert_eq!(status, 204);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&headers, "access-control-allow-credentials"), None, "never credentials with *");
    let (status, headers) = exchange("GET", &format!("{api}/v1/status"), &[("Origin", &other)]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    let (_, headers) = exchange("GET", &format!("{api}/v1/status"), &[]).await;
    assert_eq!(header(&headers, "access-control-allow-origin"), None, "no Origin, no CORS headers");

    let Some(chromium) = chromium() else {
        assert!(!under_ci(), "{test}: Chromium is not installed (install Debian's chromium)");
        eprintln!(
            "SKIPPED the browser half of {test}: Chromium is not installed; set CI=true to make this a failure"
        );
        return;
    };
    let from_allowed = page_result(&chromium, &format!("{allowed}/"), &dir.path().join("profile-a"));
    // The POST reaches the API (refused: the page's key is unknown) and the page may read the answer.
    assert_eq!(from_allowed, "read:0 write:401", "from the listed origin");
    let from_other = page_result(&chromium, &format!("{other}/"), &dir.path().join("profile-b"));
    assert_eq!(from_other, "read:0 write:blocked", "from any other origin: reads only");
}

/// After the demo's traffic, `/metrics` has every part's families (indexer, RPC, websocket heads, HTTP,
/// transaction manager) with non-zero values where traffic happened, and the exposition parses with the
/// Python `prometheus_client` OpenMetrics parser, an implementation independent of ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_exposes_metrics_of_every_part_in_valid_openmetrics() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let test = "the_demo_exposes_metrics_of_every_part_in_valid_openmetrics";
    if !support::python_module_or_skip(test, "prometheus_client.openmetrics.parser", "prometheus-client") {
        return;
    }
    if let Err(e) = find_anvil().await {
        assert!(!under_ci(), "{test}: anvil unavailable: {e}");
        eprintln!("SKIPPED {test}: anvil is not available ({e})");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_gemgate"))
        .args(["--log-filter", "warn", "demo", "--rounds", "1", "--chain-port", "0", "--listen", &listen])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _demo = KillOnDrop(child);
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout).lines().map_while(Result::ok).any(|line| line.contains("keep running"))
    });
    assert!(
        tokio::time::timeout(Duration::from_secs(300), ready).await.unwrap().unwrap(),
        "the demo never finished"
    );
    let base = format!("http://{listen}");
    for path in ["/v1/status", "/v1/transactions", "/v1/transactions?state=nope", "/v1/no-such-route"] {
        get(&format!("{base}{path}")).await;
    }
    let text = metrics_text(&base).await;
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
families = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    families[family.name] = {"type": family.type, "samples": [[s.name, s.labels, s.value] for s in family.samples]}
print(json.dumps(families))
"#;
    let mut python = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut python.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the exposition does not parse: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let total = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let family = &families[name];
        assert!(family.is_object(), "family {name} missing:\n{text}");
        family["samples"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| {
                let sample = s[0].as_str().unwrap();
                (sample == name || sample == format!("{name}_total") || sample == format!("{name}_count"))
                    && labels.iter().all(|(k, v)| s[1][*k] == *v)
            })
            .map(|s| s[2].as_f64().unwrap())
            .sum()
    };
    // Where the demo's traffic went, the counts are above zero.
    assert!(total("gemgate_indexer_events", &[]) > 0.0);
    assert!(total("gemgate_rpc_calls", &[("method", "eth_getLogs")]) > 0.0);
    assert!(total("gemgate_rpc_calls", &[("method", "eth_sendRawTransaction")]) > 0.0);
    assert!(total("gemgate_rpc_call_duration_seconds", &[("method", "eth_getBlockByNumber")]) > 0.0);
    assert!(total("gemgate_rpc_ws_connected", &[]) >= 1.0);
    assert!(total("gemgate_rpc_ws_heads", &[]) > 0.0);
    assert!(total("gemgate_http_requests", &[("route", "/v1/status"), ("status", "200")]) >= 1.0);
    assert!(total("gemgate_http_requests", &[("route", "/v1/transactions"), ("status", "400")]) >= 1.0);
    assert!(total("gemgate_http_requests", &[("route", "unmatched"), ("status", "404")]) >= 1.0);
    assert!(total("gemgate_http_request_duration_seconds", &[("route", "/v1/status")]) >= 1.0);
    assert!(total("gemgate_txm_accepted", &[]) >= 1.0);
    assert!(total("gemgate_txm_state_changes", &[("state", "included")]) >= 1.0);
    assert!(total("gemgate_txm_attempts", &[("purpose", "send")]) >= 1.0);
    assert!(total("gemgate_txm_queued_to_included_seconds", &[]) >= 1.0);
    assert!(total("gemgate_txm_signer_balance_ether", &[("signer", "demo")]) > 0.0);
    // Where none happened, the families are there at zero (RPC errors appear with their first error:
    // their labels are not known before).
    for family in [
        "gemgate_indexer_reorgs",
        "gemgate_txm_requests",
        "gemgate_txm_repricings",
        "gemgate_txm_noop_fills",
        "gemgate_txm_nonce_gaps_repaired",
        "gemgate_txm_signer_pending",
        "gemgate_indexer_loupe_repairs",
    ] {
        assert!(text.contains(&format!("# TYPE {family} ")), "family {family} missing:\n{text}");
    }
}
