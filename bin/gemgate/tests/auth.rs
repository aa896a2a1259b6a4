//! Authentication beyond API keys, through `gemgate serve`: bearer JWTs verified against an issuer's JWKS
//! (the issuer is the `jose` library in the test kit, so the tokens are not made by gemgate's code).

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::{free_port, http, serve};

const ISSUER: &str = "https://issuer.test/";
const AUDIENCE: &str = "gemgate";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A token from the issuer: `alg` with `claims`, plus `extra` request fields (`kid`, `rogue`, `secret`).
async fn token(issuer: &gemgate_testkit::js::NodeServer, alg: &str, claims: Value, extra: Value) -> String {
    let mut request = json!({"alg": alg, "claims": claims});
    request.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    let (status, body) = http("POST", &issuer.url("/token"), &[], Some(&request)).await;
    assert_eq!(status, 200, "{request}: {body}");
    body["token"].as_str().unwrap_or_else(|| panic!("{request}: {body}")).to_string()
}

fn claims(scope: &str) -> Value {
    json!({"sub": "user-1", "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "scope": scope})
}

async fn fetches(issuer: &gemgate_testkit::js::NodeServer) -> u64 {
    http("GET", &issuer.url("/stats"), &[], None).await.1["fetches"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwts_from_the_configured_issuer_authorize_by_scope_and_everything_else_is_refused() {
    let test = "jwts_from_the_configured_issuer_authorize_by_scope_and_everything_else_is_refused";
    let issuer = match gemgate_testkit::js::jwt_issuer().await {
        Ok(issuer) => issuer,
        Err(e) if gemgate_testkit::under_ci() => panic!("the jose issuer cannot start under CI: {e}"),
        Err(e) => return eprintln!("SKIPPED {test}: the jose issuer cannot start ({e})"),
    };
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("gemgate.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"sqlite://{db}\"\n[api]\nlisten = \"{listen}\"\npublic_reads = false\n\
             [api.jwt]\njwks_url = \"{jwks}\"\nissuer = \"{ISSUER}\"\naudience = [\"other\", \"{AUDIENCE}\"]\n",
            db = dir.path().join("auth.db").display(),
            jwks = issuer.url("/jwks.json"),
        ),
    )
    .unwrap();
    let _serve = serve(&config, &listen).await;
    let status_url = format!("http://{listen}/v1/status");
    let with = |token: String| {
        let url = status_url.clone();
        async move {
            let header = format!("Bearer {token}");
            http("GET", &url, &[("Authorization", &header)], None).await
        }
    };

    // Each algorithm, verified with the key its kid names.
    for alg in ["RS256", "ES256", "EdDSA"] {
        let (status, body) = with(token(&issuer, alg, claims("openid read"), json!({})).await).await;
        assert_eq!(status, 200, "{alg}: {body}");
    }
    assert_eq!(fetches(&issuer).await, 1, "the key set is fetched once and cached");
    assert_eq!(http("GET", &status_url, &[], None).await.0, 401, "no credentials");

    // Claims: each of these is refused with 401 and the reason in the ApiError body.
    let mut expired = claims("read");
    expired["exp"] = json!(now() - 120); // beyond the 30 s leeway
    let mut early = claims("read");
    early["nbf"] = json!(now() + 120);
    let mut wrong_issuer = claims("read");
    wrong_issuer["iss"] = json!("https://elsewhere.test/");
    let mut wrong_audience = claims("read");
    wrong_audience["aud"] = json!("someone-else");
    let mut no_subject = claims("read");
    no_subject.as_object_mut().unwrap().remove("sub");
    let mut no_expiry = claims("read");
    no_expiry.as_object_mut().unwrap().remove("exp");
    for (what, claims, reason) in [
        ("expired", expired, "expired"),
        ("not yet valid", early, "nbf"),
        ("wrong issuer", wrong_issuer, "issuer"),
        ("wrong audience", wrong_audience, "audience"),
        ("no subject", no_subject, "claim"),
        ("no expiry", no_expiry, "claim"),
    ] {
        let (status, body) = with(token(&issuer, "ES256", claims, json!({})).await).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(reason), "{what}: {body}");
    }
    // Signatures: a key outside the set under a known kid, HS256 with any secret, no signature at all.
    let forged = token(&issuer, "RS256", claims("admin"), json!({"rogue": true})).await;
    assert_eq!(with(forged).await.0, 401, "a signature by another key");
    let symmetric = token(&issuer, "HS256", claims("admin"), json!({"kid": "rs", "secret": "guess"})).await;
    assert_eq!(with(symmetric).await.0, 401, "HS256 is never accepted");
    let unsigned = {
        use base64::Engine as _;
        let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.", b64(&json!({"alg": "none", "kid": "rs"})), b64(&claims("admin")))
    };
    assert_eq!(with(unsigned).await.0, 401, "alg none");

    // Scopes: a read token cannot act as an operator; an admin one can (the sink does not exist: 404).
    let pause = format!("http://{listen}/v1/sinks/nothing/pause");
    let reader = format!("Bearer {}", token(&issuer, "EdDSA", claims("read"), json!({})).await);
    assert_eq!(http("POST", &pause, &[("Authorization", &reader)], None).await.0, 403);
    let mut array = claims("");
    array["scope"] = json!(["transact", "relay"]);
    let (status, body) = with(token(&issuer, "EdDSA", array, json!({})).await).await;
    assert_eq!(status, 403, "scopes as an array, without read: {body}");
    let admin = format!("Bearer {}", token(&issuer, "RS256", claims("admin"), json!({})).await);
    let (status, body) = http("POST", &pause, &[("Authorization", &admin)], None).await;
    assert_eq!(status, 404, "authorized, and the sink is unknown: {body}");

    // Rotation: a token under a new kid is accepted once the set is fetched again, and a flood of unknown
    // kids does not turn into a flood of fetches.
    let before = fetches(&issuer).await;
    for i in 0..30 {
        let bogus =
            token(&issuer, "RS256", claims("read"), json!({"kid": format!("k{i}"), "rogue": true})).await;
        assert_eq!(with(bogus).await.0, 401, "an unknown kid");
    }
    http("POST", &issuer.url("/rotate"), &[], None).await;
    let rotated = token(&issuer, "RS256", claims("read"), json!({"kid": "rs2"})).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = with(rotated.clone()).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 401, "an unknown kid is refused until the set is fetched again");
        assert!(tokio::time::Instant::now() < deadline, "the rotated key was never fetched");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let after = fetches(&issuer).await;
    assert!(after - before <= 3, "unknown kids refetch at most once per 10 s: {before} -> {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parse_sessions_authorize_until_logout_writes_are_audited_and_rate_limited() {
    use sha2::Digest as _;
    let test = "parse_sessions_authorize_until_logout_writes_are_audited_and_rate_limited";
    let Some(database) = support::TempPostgres::create(test, "gemgate_parse").await else { return };
    let parse = match gemgate_testkit::js::parse_server(&database.url()).await {
        Ok(parse) => parse,
        Err(e) if gemgate_testkit::under_ci() => panic!("Parse Server cannot start under CI: {e}"),
        Err(e) => return eprintln!("SKIPPED {test}: Parse Server cannot start ({e})"),
    };
    let app = [("X-Parse-Application-Id", "gemgate-test")];
    let signup = json!({"username": "alice", "password": "correct horse", "gemgateScopes": ["admin"]});
    let (status, user) = http("POST", &parse.url("/parse/users"), &app, Some(&signup)).await;
    assert_eq!(status, 201, "{user}");
    let (user_id, session) = (user["objectId"].as_str().unwrap(), user["sessionToken"].as_str().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let ops_key = "ops-key-0123456789abcdef";
    let digest = hex::encode(sha2::Sha256::digest(ops_key.as_bytes()));
    let config = dir.path().join("gemgate.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"sqlite://{db}\"\n[api]\nlisten = \"{listen}\"\npublic_reads = false\n\
             [[api.keys]]\nname = \"ops\"\nkey_sha256 = \"{digest}\"\nscopes = [\"admin\"]\n\
             [api.parse]\nserver_url = \"{server}\"\napp_id = \"gemgate-test\"\nscopes = [\"read\", \"transact\"]\n\
             cache_ttl = \"1s\"\n[api.rate_limits]\ntransact = {{ per_second = 0.5, burst = 2 }}\n",
            db = dir.path().join("parse.db").display(),
            server = parse.url("/parse"),
        ),
    )
    .unwrap();
    let _serve = serve(&config, &listen).await;
    let api = |path: &str| format!("http://{listen}{path}");
    let as_user = [("X-Parse-Session-Token", session)];

    let (status, body) = http("GET", &api("/v1/status"), &as_user, None).await;
    assert_eq!(status, 200, "a Parse session reads: {body}");
    let (status, body) =
        http("GET", &api("/v1/status"), &[("X-Parse-Session-Token", "r:forged")], None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "{body}");
    let (status, _) = http("POST", &api("/v1/sinks/nothing/pause"), &as_user, None).await;
    assert_eq!(status, 403, "the user's own gemgateScopes field grants nothing");

    // Writes: a transaction request on a gemgate with no chains is refused by the handler (not by auth),
    // twice within the burst; the third is over the limit of the user's bucket.
    let request = json!({"chain_id": 1, "to": "0x0000000000000000000000000000000000000001", "data": "0x"});
    for _ in 0..2 {
        let (status, body) = http("POST", &api("/v1/transactions"), &as_user, Some(&request)).await;
        assert!(status != 401 && status != 403 && status != 429, "authorized: {status} {body}");
    }
    let limited =
        support::try_http("POST", &api("/v1/transactions"), &as_user, Some(&request)).await.unwrap();
    assert_eq!(limited.status, 429, "{:?}", limited.body);
    assert_eq!(limited.body["error"]["code"], "rate_limited");
    let retry: u64 = limited.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&retry), "about 2 s until a token at 0.5/s: {retry}");
    let ops = format!("Bearer {ops_key}");
    let (status, _) = http("POST", &api("/v1/sinks/nothing/pause"), &[("Authorization", &ops)], None).await;
    assert_eq!(status, 404, "another caller has its own bucket; the sink does not exist");

    // The audit log names each caller of each write, newest first; the refused ones were never made.
    let (status, page) = http("GET", &api("/v1/audit"), &[("Authorization", &ops)], None).await;
    assert_eq!(status, 200, "{page}");
    let entries = page["entries"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| (e["caller"].as_str().unwrap(), e["method"].as_str().unwrap(), e["path"].as_str().unwrap()))
        .collect();
    let parse_caller = format!("parse:{user_id}");
    assert_eq!(
        seen,
        vec![
            ("ops", "POST", "/v1/sinks/nothing/pause"),
            (parse_caller.as_str(), "POST", "/v1/transactions"),
            (parse_caller.as_str(), "POST", "/v1/transactions"),
        ]
    );
    assert_eq!(entries[0]["status"], 404);
    let (status, _) = http("GET", &api("/v1/audit"), &as_user, None).await;
    assert_eq!(status, 403, "the audit log is for operators");

    // Logged out at Parse: refused once the cached answer (1 s) has expired.
    let (status, _) = http("POST", &parse.url("/parse/logout"), &[app[0], as_user[0]], None).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, _) = http("GET", &api("/v1/status"), &as_user, None).await;
    assert_eq!(status, 401, "a logged-out session stops working within cache_ttl");
    drop(parse);
}
