//! SQL is built only with bound parameters: against `gemgate demo` (SQLite, every Gemforce projection
//! filled), every string the read API passes to the store (event names, addresses, projection tables, row
//! keys, page cursors) is given SQL injection payloads, quotes, NUL bytes, very long and non-ASCII text. Each
//! answer is a refusal or an empty or ordinary page, never a 500 and never rows it should not have; and
//! afterwards every table holds exactly what it held before.

mod support;

use support::{free_port, get};

/// Every byte outside `[A-Za-z0-9-_.~]` percent-encoded (for a path segment or a query value).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn hostile() -> Vec<String> {
    vec![
        "' OR '1'='1".into(),
        "x' OR 1=1 --".into(),
        "\"; DROP TABLE events; --".into(),
        "events; DELETE FROM events".into(),
        "trade_deals WHERE 1=1 --".into(),
        "1) OR (1=1".into(),
        "%' OR event LIKE '%".into(),
        "\0".into(),
        "a\0' OR 1=1".into(),
        "Robert'); DROP TABLE trade_deals;--".into(),
        "ÄÖÜ💥 'quoted' \"double\"".into(),
        "../../etc/passwd".into(),
        "x".repeat(10_000),
        "0x5FbDB2315678afecb367f032d93F642f64180aa3' OR '1'='1".into(),
    ]
}

/// Every event and every row of every projection, as the API lists them.
async fn everything(base: &str) -> (Vec<serde_json::Value>, Vec<(String, Vec<serde_json::Value>)>) {
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let url = match &after {
            Some(a) => format!("{base}/v1/events?limit=1000&after={}", encode(a)),
            None => format!("{base}/v1/events?limit=1000"),
        };
        let (status, page) = get(&url).await;
        assert_eq!(status, 200, "{page}");
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    let (_, status) = get(&format!("{base}/v1/status")).await;
    let mut tables = Vec::new();
    let (status_code, unknown) = get(&format!("{base}/v1/projections/no_such_table")).await;
    assert_eq!(status_code, 404, "{unknown} {status}");
    // "projection no_such_table (known: a, b, c) not found"
    let message = unknown["error"]["message"].as_str().unwrap_or_default().to_string();
    let known =
        message.split("known: ").nth(1).and_then(|k| k.split(')').next()).unwrap_or_default().to_string();
    for table in known.split(", ").filter(|t| !t.is_empty()) {
        let (code, page) = get(&format!("{base}/v1/projections/{table}?limit=1000")).await;
        assert_eq!(code, 200, "{table}: {page}");
        tables.push((table.to_string(), page["rows"].as_array().unwrap().clone()));
    }
    assert!(tables.len() >= 5, "the projections were listed: {message}");
    (events, tables)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_strings_in_every_read_filter_change_nothing_and_leak_nothing() {
    let test = "hostile_strings_in_every_read_filter_change_nothing_and_leak_nothing";
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let Some(_demo) = support::demo(test, &listen, dir.path()).await else { return };
    let base = format!("http://{listen}");
    let (events, tables) = everything(&base).await;
    assert!(events.len() > 20, "the demo indexed events: {}", events.len());
    let table = tables.iter().find(|(_, rows)| !rows.is_empty()).map(|(t, _)| t.clone()).unwrap();

    let mut answers = 0;
    for text in hostile() {
        let h = encode(&text);
        let urls = [
            format!("{base}/v1/events?event={h}"),
            format!("{base}/v1/events?address={h}"),
            format!("{base}/v1/events?after={h}"),
            format!("{base}/v1/events?chain_id={h}"),
            format!("{base}/v1/events?from_block={h}"),
            format!("{base}/v1/events?limit={h}"),
            format!("{base}/v1/projections/{h}"),
            format!("{base}/v1/projections/{table}/{h}"),
            format!("{base}/v1/projections/{table}?after={h}"),
            format!("{base}/v1/trade-deals/{h}"),
            format!("{base}/v1/trade-deals?after={h}"),
            format!("{base}/v1/transactions/{h}"),
        ];
        for url in &urls {
            let (status, body) = get(url).await;
            answers += 1;
            assert!([200, 400, 401, 404, 414].contains(&status), "{url}: {status} {body}");
            if status == 200 && url.contains("/v1/events?event=") {
                assert_eq!(body["events"], serde_json::json!([]), "{url}: no event has that name");
            }
            if status == 200 && url.contains("/v1/events?") && !url.contains("after=") {
                assert!(body["events"].as_array().is_some_and(|e| e.len() <= 100), "{url}: an ordinary page");
            }
            if status >= 400 {
                assert!(body["error"]["code"].is_string(), "{url}: the ApiError body: {body}");
            }
        }
    }
    let (after_events, after_tables) = everything(&base).await;
    assert_eq!(after_events.len(), events.len(), "no event was removed or added");
    assert_eq!(after_tables, tables, "every projection holds exactly what it held");
    eprintln!(
        "{test}: {answers} hostile requests; {} events and {} tables unchanged",
        events.len(),
        tables.len()
    );
}
