//! Hostile input to every endpoint of `gemgate serve`, generated from its own OpenAPI document: wrong
//! types, random JSON of every shape, malformed and truncated JSON, unknown fields, huge numbers, odd path
//! segments and query values, bodies over `api.max_body_bytes`, wrong methods and unknown routes. The
//! property: no answer is a 500, every refusal carries the one `ApiError` body, and the server still
//! answers `/health` afterwards. The inputs are seeded (`GEMGATE_TEST_SEED` replays a run) and a failing
//! request is printed whole.

mod support;

use serde_json::{Value, json};
use support::{free_port, try_http};

use gemgate_testkit::{AnvilOptions, SplitMix64, anvil_or_skip, deploy_gemforce};

const KEY: &str = "bad-input-key-with-every-scope";
const MAX_BODY: usize = 4096;

/// Strings a careless parser trips over.
const NASTY: &[&str] = &[
    "",
    " ",
    "0",
    "-1",
    "1e400",
    "18446744073709551616",
    "115792089237316195423570985008687907853269984665640564039457584007913129639936",
    "0x",
    "0xzz",
    "0x0000000000000000000000000000000000000000",
    "../../etc/passwd",
    "%00",
    "null",
    "true",
    "{}",
    "[]",
    "\u{0}",
    "\u{202e}gnirts",
    "🦀🦀🦀",
    "'; DROP TABLE events; --",
    "a\"b\\c",
];

struct Gen(SplitMix64);

impl Gen {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.0.range(0, items.len() as u64 - 1) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.0.range(1, 100) <= percent
    }

    fn text(&mut self) -> String {
        match self.0.range(0, 3) {
            0 => self.pick(NASTY).to_string(),
            1 => "x".repeat(self.0.range(0, 300) as usize),
            2 => format!("0x{}", "ab".repeat(self.0.range(0, 40) as usize)),
            _ => self.0.next_u64().to_string(),
        }
    }

    /// Any JSON value, nested up to `depth`.
    fn value(&mut self, depth: u32) -> Value {
        match self.0.range(0, if depth == 0 { 4 } else { 6 }) {
            0 => Value::Null,
            1 => json!(self.chance(50)),
            2 => json!(self.0.next_u64() as i64),
            3 => json!(self.text()),
            4 => json!(f64::from_bits(self.0.next_u64() & 0x7fef_ffff_ffff_ffff)),
            5 => Value::Array((0..self.0.range(0, 4)).map(|_| self.value(depth - 1)).collect()),
            _ => {
                let mut object = serde_json::Map::new();
                for _ in 0..self.0.range(0, 4) {
                    object.insert(self.text(), self.value(depth - 1));
                }
                Value::Object(object)
            }
        }
    }

    /// A body for an operation whose schema has these properties: mostly the right field names with
    /// random values (so validation past the parser runs), sometimes anything at all.
    fn body(&mut self, properties: &[String]) -> Value {
        if properties.is_empty() || self.chance(25) {
            return self.value(3);
        }
        let mut object = serde_json::Map::new();
        for name in properties {
            if self.chance(80) {
                object.insert(name.clone(), self.value(2));
            }
        }
        if self.chance(15) {
            object.insert("unexpected_field".into(), self.value(1));
        }
        Value::Object(object)
    }
}

/// The property names of an operation's JSON request body (resolving one `$ref`).
fn body_properties(document: &Value, operation: &Value) -> Vec<String> {
    let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
    let schema = match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => &document["components"]["schemas"][name],
        None => schema,
    };
    schema["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default()
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_input_makes_any_endpoint_answer_500_or_leave_the_error_body() {
    use sha2::Digest as _;
    let test = "no_input_makes_any_endpoint_answer_500_or_leave_the_error_body";
    let Some(anvil) = anvil_or_skip(test, AnvilOptions::default()).await.unwrap() else { return };
    let provider = anvil.provider();
    let d = deploy_gemforce(&provider, anvil.accounts()[0]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let key_file = dir.path().join("signer.key");
    std::fs::write(&key_file, "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6").unwrap();
    let hook_file = dir.path().join("hook.secret");
    std::fs::write(&hook_file, "gemforce-hook-secret").unwrap();
    let config = dir.path().join("gemgate.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"sqlite://{db}\"\n[api]\nlisten = \"{listen}\"\npublic_reads = false\n\
             max_body_bytes = {MAX_BODY}\ngemforce_webhook_secret_file = \"{hook}\"\n\
             [[api.keys]]\nname = \"all\"\nkey_sha256 = \"{digest}\"\nscopes = [\"read\", \"transact\", \"relay\", \"admin\"]\n\
             [[chains]]\nid = {chain}\nrpc = [\"{rpc}\"]\n\
             [[contracts]]\nname = \"gemforce\"\nchain = {chain}\naddress = \"{diamond}\"\ndiamond = true\n\
             [[signers]]\nname = \"demo\"\nkind = \"local\"\nkey_file = \"{key}\"\nchains = [{chain}]\n\
             [[txm.raw_allow]]\nto = \"{diamond}\"\n\
             [[relayers]]\nname = \"carbon\"\nchain = {chain}\nforwarder = \"{forwarder}\"\nsigner = \"demo\"\n\
             [[relayers.allow]]\nto = \"gemforce\"\n",
            db = dir.path().join("bad.db").display(),
            digest = hex::encode(sha2::Sha256::digest(KEY.as_bytes())),
            chain = anvil.chain_id(),
            rpc = anvil.endpoint(),
            diamond = d.diamond,
            key = key_file.display(),
            forwarder = d.forwarder,
            hook = hook_file.display(),
        ),
    )
    .unwrap();
    let _serve = support::serve(&config, &listen).await;
    let base = format!("http://{listen}");
    let (_, document) = support::get(&format!("{base}/v1/openapi.json")).await;

    let seed = std::env::var("GEMGATE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_261_204);
    let mut g = Gen(SplitMix64::new(seed));
    let operations: Vec<(String, String, Value)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .iter()
                .map(move |(method, op)| (method.clone(), path.clone(), op.clone()))
        })
        .filter(|(_, path, _)| path != "/v1/stream") // a stream never ends; its inputs are the query only
        .collect();
    let auth = format!("Bearer {KEY}");
    let mut sent = 0;
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for round in 0..1200 {
        let (method, path, operation) = g.pick(&operations).clone();
        // Path parameters: nasty segments.
        let mut concrete = path.clone();
        while let (Some(open), Some(close)) = (concrete.find('{'), concrete.find('}')) {
            let value = encode(&g.text());
            concrete.replace_range(open..=close, if value.is_empty() { "x" } else { &value });
        }
        // Query: the documented names (and a stranger) with random values.
        let mut query: Vec<String> = Vec::new();
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            if parameter["in"] == "query" && g.chance(60) {
                query.push(format!("{}={}", parameter["name"].as_str().unwrap(), encode(&g.text())));
            }
        }
        if g.chance(10) {
            query.push(format!("{}={}", encode(&g.text()), encode(&g.text())));
        }
        if !query.is_empty() {
            concrete = format!("{concrete}?{}", query.join("&"));
        }
        // Method: now and then the wrong one.
        let method = if g.chance(5) { g.pick(&["put", "delete", "patch"]).to_string() } else { method };
        let properties = body_properties(&document, &operation);
        let (body, raw): (Option<Value>, Option<String>) = match (method.as_str(), g.0.range(0, 9)) {
            ("get", _) => (None, None),
            (_, 0) => (None, Some("{\"truncated\": [1, 2".into())),
            (_, 1) => (None, Some("not json at all".into())),
            (_, 2) => (None, Some(format!("{{\"pad\": \"{}\"}}", "x".repeat(MAX_BODY + 10)))),
            _ => (Some(g.body(&properties)), None),
        };
        let url = format!("{base}{concrete}");
        let headers: Vec<(&str, &str)> =
            if g.chance(90) { vec![("Authorization", auth.as_str())] } else { Vec::new() };
        let answer = match raw {
            Some(text) => support::try_http_text(&method.to_uppercase(), &url, &headers, &text).await,
            None => try_http(&method.to_uppercase(), &url, &headers, body.as_ref()).await,
        };
        let answer =
            answer.unwrap_or_else(|e| panic!("round {round} (seed {seed}): {method} {url}: no answer ({e})"));
        sent += 1;
        *statuses.entry(answer.status).or_default() += 1;
        let shown = || {
            format!(
                "round {round} (seed {seed}): {method} {url} {body:?} -> {} {}",
                answer.status, answer.body
            )
        };
        assert_ne!(answer.status, 500, "{}", shown());
        if answer.status >= 400 {
            let error = &answer.body["error"];
            assert!(
                error["code"].as_str().is_some_and(|c| !c.is_empty()) && error["message"].is_string(),
                "the ApiError body: {}",
                shown()
            );
        }
    }
    assert_eq!(sent, 1200);
    eprintln!("answers by status: {statuses:?}");
    // The inputs reach past the parsers: some are accepted, most refused with a 4xx of their own.
    assert!(
        statuses.keys().any(|s| *s < 300) && statuses.keys().filter(|s| **s >= 400).count() >= 4,
        "{statuses:?}"
    );
    // Unknown routes and oversize bodies, explicitly.
    let unknown = try_http("GET", &format!("{base}/v1/nothing-here"), &[], None).await.unwrap();
    assert_eq!((unknown.status, unknown.body["error"]["code"].as_str()), (404, Some("not_found")));
    let huge = format!("{{\"to\": \"{}\"}}", "a".repeat(MAX_BODY * 2));
    let auth_header = [("Authorization", auth.as_str())];
    let over = support::try_http_text("POST", &format!("{base}/v1/transactions"), &auth_header, &huge)
        .await
        .unwrap();
    assert_eq!(
        (over.status, over.body["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{:?}",
        over.body
    );
    let (status, _) = support::get(&format!("{base}/health")).await;
    assert_eq!(status, 200, "still serving");
}
