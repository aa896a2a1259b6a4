//! `GET /v1/openapi.json` from `gemgate serve`: the document is derived from the routes the binary serves
//! (every route is in it, nothing else is), it is valid OpenAPI 3.1 by an independent validator (Python's
//! `openapi-spec-validator`), and real answers carry only the fields their schemas declare.

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Command;

use support::{conforms, free_port, get, http, response_schema};

/// Every route the router serves, as (method, path).
const ROUTES: [(&str, &str); 29] = [
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("post", "/v1/webhooks/gemforce"),
    ("get", "/v1/status"),
    ("get", "/v1/events"),
    ("get", "/v1/stream"),
    ("get", "/v1/trade-deals"),
    ("get", "/v1/trade-deals/{id}"),
    ("get", "/v1/projections/{table}"),
    ("get", "/v1/projections/{table}/{key}"),
    ("get", "/v1/sinks"),
    ("post", "/v1/sinks/{name}/pause"),
    ("post", "/v1/sinks/{name}/resume"),
    ("post", "/v1/sinks/{name}/replay"),
    ("post", "/v1/sinks/{name}/requeue"),
    ("get", "/v1/transactions"),
    ("post", "/v1/transactions"),
    ("post", "/v1/transactions/raw"),
    ("get", "/v1/transactions/{id}"),
    ("post", "/v1/transactions/{id}/cancel"),
    ("post", "/v1/transactions/{id}/speed-up"),
    ("post", "/v1/call"),
    ("post", "/v1/relay"),
    ("get", "/v1/drift"),
    ("get", "/v1/snapshots"),
    ("get", "/v1/cluster"),
    ("get", "/v1/audit"),
    ("get", "/v1/history"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_the_routes_served_valid_and_true_to_the_answers() {
    let test = "the_openapi_document_is_the_routes_served_valid_and_true_to_the_answers";
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("gemgate.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"sqlite://{}\"\n[api]\nlisten = \"{listen}\"\npublic_reads = true\n",
            dir.path().join("gemgate.db").display()
        ),
    )
    .unwrap();
    let _serve = support::serve(&config, &listen).await;
    let base = format!("http://{listen}");

    let (status, document) = get(&format!("{base}/v1/openapi.json")).await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");

    // Exactly the routes served (the document itself is not an API operation).
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().unwrap().keys().map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> =
        ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, served, "the document lists exactly the routes served");
    for (method, path) in served.iter().filter(|(_, path)| path != "/v1/stream") {
        let (status, _) = http(&method.to_uppercase(), &format!("{base}{}", concrete(path)), &[], None).await;
        assert_ne!(status, 405, "{method} {path} is routed");
    }

    // Writes and the audit log are documented with the credentials that open them (an API key, a JWT or
    // a Parse session), reads of a public server without.
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(
        (schemes["jwt"]["scheme"].as_str(), schemes["jwt"]["bearerFormat"].as_str()),
        (Some("bearer"), Some("JWT"))
    );
    assert_eq!(
        (schemes["parse_session"]["in"].as_str(), schemes["parse_session"]["name"].as_str()),
        (Some("header"), Some("X-Parse-Session-Token"))
    );
    for (method, path) in &served {
        let security = &document["paths"][path][method]["security"];
        let writes = path.starts_with("/v1/sinks/")
            || path == "/v1/audit"
            || (method == "post" && (path.starts_with("/v1/transactions") || path == "/v1/relay"));
        assert_eq!(security.is_array(), writes, "{method} {path}: security");
        if writes {
            let alternatives: BTreeSet<String> = security
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_object().unwrap().keys().cloned())
                .collect();
            let expected: BTreeSet<String> = ["bearer", "jwt", "parse_session"].map(String::from).into();
            assert_eq!(alternatives, expected, "{method} {path}: any of the three credentials");
        }
    }

    // Real answers carry the fields their schemas declare, and no others.
    for (path, route) in [
        ("/health", "/health"),
        ("/ready", "/ready"),
        ("/v1/status", "/v1/status"),
        ("/v1/sinks", "/v1/sinks"),
        ("/v1/cluster", "/v1/cluster"),
    ] {
        let (status, body) = get(&format!("{base}{path}")).await;
        assert_eq!(status, 200, "{path}");
        let schema = response_schema(&document, "get", route, 200);
        conforms(&document, schema, &body, path).unwrap();
    }
    for (path, route, status) in [
        ("/v1/events?limit=5", "/v1/events", 200),
        ("/v1/transactions?limit=5", "/v1/transactions", 200),
        ("/v1/trade-deals", "/v1/trade-deals", 200),
        ("/v1/drift?limit=5", "/v1/drift", 200),
        ("/v1/snapshots", "/v1/snapshots", 200),
        ("/v1/drift?before=x", "/v1/drift", 400),
        ("/v1/events?limit=0", "/v1/events", 400),
        ("/v1/transactions?state=nope", "/v1/transactions", 400),
    ] {
        let (answered, body) = get(&format!("{base}{path}")).await;
        assert_eq!(answered, status, "{path}: {body}");
        let schema = response_schema(&document, "get", route, status);
        conforms(&document, schema, &body, path).unwrap();
    }
    // A schema that would accept anything proves nothing: a field it does not declare is refused.
    let schema = response_schema(&document, "get", "/v1/status", 200);
    assert!(conforms(&document, schema, &serde_json::json!({"chains": [], "colour": 1}), "probe").is_err());

    // An independent validator reads it as OpenAPI 3.1.
    if !support::python_module_or_skip(test, "openapi_spec_validator", "openapi-spec-validator") {
        return;
    }
    let file = dir.path().join("openapi.json");
    std::fs::File::create(&file).unwrap().write_all(document.to_string().as_bytes()).unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys; from openapi_spec_validator import validate; \
             validate(json.load(open(sys.argv[1]))); print('valid')",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("valid"),
        "openapi-spec-validator: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A documented path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
        .replace("{table}", "trade_deals")
        .replace("{key}", "k")
        .replace("{name}", "none")
}

/// What a frontend team does with the document: generate a TypeScript client from it (openapi-typescript),
/// type-check their code against it (`tsc --strict`) and call `gemgate demo` with it (openapi-fetch). The
/// client's answers equal the API's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typescript_client_generated_from_the_document_compiles_and_calls_the_demo() {
    let test = "a_typescript_client_generated_from_the_document_compiles_and_calls_the_demo";
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let Some(_demo) = support::demo(test, &listen, dir.path()).await else { return };
    let base = format!("http://{listen}");
    let (_, document) = get(&format!("{base}/v1/openapi.json")).await;
    let answer = match gemgate_testkit::js::typescript_client(&document, &base, "gemgate-demo-key").await {
        Ok(answer) => answer,
        Err(e) if gemgate_testkit::under_ci() => panic!("the TypeScript client failed: {e}"),
        Err(e) => return eprintln!("SKIPPED {test}: the TypeScript toolchain is unavailable ({e})"),
    };
    let (_, events) = get(&format!("{base}/v1/events?event=TradeDealCreated&limit=5")).await;
    let ids: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert!(!ids.is_empty());
    assert_eq!(answer["ids"], serde_json::json!(ids), "{answer}");
    assert_eq!(answer["chains"], serde_json::json!([31337]), "{answer}");
    assert_eq!(answer["refused"]["status"], 400, "the typed error body: {answer}");
    assert!(answer["refused"]["code"].as_str().is_some_and(|c| !c.is_empty()), "{answer}");
    let (_, deals) = get(&format!("{base}/v1/trade-deals")).await;
    assert_eq!(answer["deals"], deals["trade_deals"].as_array().unwrap().len(), "{answer}");
}
