//! Loading and validating configuration files as a user writes them.

use std::collections::BTreeMap;
use std::path::Path;

use gemgate_config::{ConfigError, DatabaseBackend, SinkKind, load_str, load_with_env};
use gemgate_domain::Finality;

const ABI: &str = r#"[{"type":"event","name":"Ping","inputs":[{"name":"n","type":"uint256","indexed":true}],"anonymous":false}]"#;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn problems(result: Result<gemgate_config::Settings, ConfigError>) -> Vec<String> {
    match result {
        Ok(_) => panic!("expected the configuration to be refused"),
        Err(e) => e.problems().into_iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn defaults_need_no_file() {
    let settings = load_with_env(None, &BTreeMap::new()).unwrap();
    assert_eq!(settings.database.backend(), DatabaseBackend::Sqlite);
    assert_eq!(settings.api.listen.to_string(), "127.0.0.1:8080");
    assert!(settings.api.public_reads, "reads are public by default on loopback");
    assert!(settings.chains.is_empty());
}

#[test]
fn a_full_file_loads_into_typed_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ping.json"), ABI).unwrap();
    std::fs::write(dir.path().join("hook.secret"), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").unwrap();
    let text = r#"
        [database]
        url = "postgres://gemgate:pw@127.0.0.1/gemgate"
        [api]
        listen = "0.0.0.0:9000"
        [[api.keys]]
        name = "backend"
        key_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        scopes = ["read", "transact"]
        [[chains]]
        id = 31337
        rpc = ["http://127.0.0.1:8545", "http://127.0.0.1:8546"]
        ws = "ws://127.0.0.1:8545"
        poll_interval = "250ms"
        [[contracts]]
        name = "ping"
        chain = 31337
        address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
        abi = ["ping.json"]
        [[sinks]]
        name = "deals"
        kind = "amqp"
        url = "amqp://guest:guest@127.0.0.1:5672/%2f"
        queue = "deals"
        finality = { confirmations = 3 }
        events = ["ping.Ping"]
        [[sinks]]
        name = "hook"
        kind = "webhook"
        url = "https://example.com/hook"
        secret_file = "hook.secret"
        [[signers]]
        name = "ops"
        kind = "local"
        key_env = "OPS_KEY"
        chains = [31337]
    "#;
    let key = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    let settings = load_str(text, Path::new("test.toml"), dir.path(), &env(&[("OPS_KEY", key)])).unwrap();
    assert_eq!(settings.database.backend(), DatabaseBackend::Postgres);
    assert!(!settings.api.public_reads, "not loopback: reads need a key unless configured");
    assert_eq!(settings.chains[0].rpc.len(), 2);
    assert_eq!(settings.chains[0].poll_interval, std::time::Duration::from_millis(250));
    assert_eq!(settings.chains[0].confirmations, 12);
    assert_eq!(settings.contracts[0].abi[0], dir.path().join("ping.json"));
    assert_eq!(settings.sinks[0].finality, Finality::Confirmations(3));
    match &settings.sinks[0].kind {
        SinkKind::Amqp { exchange, queue, .. } => {
            assert_eq!(exchange, "gemgate");
            assert_eq!(queue.as_deref(), Some("deals"));
        }
        other => panic!("wrong kind {other:?}"),
    }
    match &settings.sinks[1].kind {
        SinkKind::Webhook { secrets, .. } => {
            assert_eq!(secrets[0].expose(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        }
        other => panic!("wrong kind {other:?}"),
    }

    let printed = settings.to_redacted_toml();
    for secret in ["pw@", "guest:guest", key, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
        assert!(!printed.contains(secret), "{secret} leaked into:\n{printed}");
    }
    assert!(printed.contains("<redacted>"));
    assert!(!format!("{settings:?}").contains(key), "Debug must not show the key");
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
        [api]
        listen = "localhost"
        [[chains]]
        id = 1
        rpc = ["ftp://node"]
        [[contracts]]
        name = "deals"
        chain = 5
        address = "0x1234"
        abi = ["missing.json"]
        [[sinks]]
        name = "q"
        kind = "sqs"
        [[sinks]]
        name = "n"
        kind = "nats"
        url = "nats://127.0.0.1:4222"
        finality = "final"
        [[signers]]
        name = "ops"
        kind = "local"
        key_env = "NOT_SET_ANYWHERE"
        chains = [7]
    "#;
    let found = problems(load_str(text, Path::new("bad.toml"), dir.path(), &BTreeMap::new()));
    let expect = [
        "api.listen",
        "chains[0].rpc[0]: scheme \"ftp\"",
        "contracts[0].chain: chain 5 is not configured",
        "contracts[0].address",
        "contracts[0].abi[0]: cannot read ABI file",
        "sinks[0].kind: unknown sink kind \"sqs\"",
        "sinks[1].finality",
        "sinks[1].subject: required",
        "signers[0].chains[0]: chain 7 is not configured",
        "signers[0].key_env: environment variable NOT_SET_ANYWHERE is not set",
    ];
    for prefix in expect {
        assert!(
            found.iter().any(|p| p.starts_with(prefix)),
            "no problem starting with {prefix:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expect.len(), "{found:#?}");
}

#[test]
fn unknown_keys_and_wrong_types_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let typo = problems(load_str(
        "[[chains]]\nid = 1\nrpc = []\nconfirmatons = 3\n",
        Path::new("x"),
        dir.path(),
        &BTreeMap::new(),
    ));
    assert!(typo[0].contains("chains[0]") && typo[0].contains("confirmatons"), "{typo:?}");
    let wrong_type =
        problems(load_str("[[chains]]\nid = \"one\"\n", Path::new("x"), dir.path(), &BTreeMap::new()));
    assert!(wrong_type[0].starts_with("chains[0].id"), "{wrong_type:?}");
    let syntax = problems(load_str("[database\n", Path::new("x.toml"), dir.path(), &BTreeMap::new()));
    assert!(syntax[0].contains("not valid TOML"), "{syntax:?}");
}

#[test]
fn environment_overrides_are_validated_like_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[[chains]]\nid = 31337\nrpc = [\"http://127.0.0.1:8545\"]\n";
    let settings = load_str(
        text,
        Path::new("x"),
        dir.path(),
        &env(&[
            ("GEMGATE__DATABASE__URL", "postgres://127.0.0.1/test"),
            ("GEMGATE__CHAINS__0__CONFIRMATIONS", "2"),
        ]),
    )
    .unwrap();
    assert_eq!(settings.database.backend(), DatabaseBackend::Postgres);
    assert_eq!(settings.chains[0].confirmations, 2);

    let bad =
        problems(load_str(text, Path::new("x"), dir.path(), &env(&[("GEMGATE__API__LISTEN", "nowhere")])));
    assert!(bad[0].starts_with("api.listen"), "{bad:?}");
}

#[test]
fn a_private_key_in_bad_shape_is_refused_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[[signers]]\nname = \"ops\"\nkind = \"local\"\nkey_env = \"K\"\n";
    let found = problems(load_str(text, Path::new("x"), dir.path(), &env(&[("K", "not-a-key-SECRETVALUE")])));
    assert!(found[0].starts_with("signers[0].key"), "{found:?}");
    assert!(!found[0].contains("SECRETVALUE"), "the value must never be echoed: {found:?}");
}

#[test]
fn an_aws_kms_signer_takes_a_key_region_and_endpoint_and_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let chain = "[[chains]]\nid = 1\nname = \"main\"\nrpc = [\"http://127.0.0.1:8545\"]\n";
    let signer = |extra: &str| {
        format!("{chain}[[signers]]\nname = \"hot\"\nkind = \"aws-kms\"\nchains = [1]\n{extra}")
    };
    let good = signer(
        "key_id = \"alias/gemgate-hot\"\nregion = \"eu-central-1\"\nendpoint = \"https://vpce-1.kms.eu-central-1.vpce.amazonaws.com\"\n",
    );
    let settings = load_str(&good, Path::new("x"), dir.path(), &env(&[])).unwrap();
    match &settings.signers[0].kind {
        gemgate_config::SignerKind::AwsKms { key_id, region, endpoint } => {
            assert_eq!(key_id, "alias/gemgate-hot");
            assert_eq!(region.as_deref(), Some("eu-central-1"));
            assert_eq!(
                endpoint.as_ref().unwrap().expose().host_str(),
                Some("vpce-1.kms.eu-central-1.vpce.amazonaws.com")
            );
        }
        other => panic!("{other:?}"),
    }

    let bad = problems(load_str(
        &signer("region = \"EU Central\"\nendpoint = \"ftp://kms\"\n"),
        Path::new("x"),
        dir.path(),
        &env(&[]),
    ));
    assert_eq!(bad.len(), 3, "{bad:?}");
    assert!(bad[0].starts_with("signers[0].key_id: required for kind = \"aws-kms\""), "{bad:?}");
    assert!(bad[1].starts_with("signers[0].region: \"EU Central\" is not an AWS region"), "{bad:?}");
    assert!(bad[2].starts_with("signers[0].endpoint: scheme \"ftp\""), "{bad:?}");

    // Credentials belong to the AWS default chain, never to this file.
    let keys = problems(load_str(
        &signer("key_id = \"k\"\naccess_key_id = \"AKIA...\"\n"),
        Path::new("x"),
        dir.path(),
        &env(&[]),
    ));
    assert!(keys[0].contains("access_key_id"), "{keys:?}");
}

#[test]
fn sink_filters_take_events_families_transaction_states_and_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ping.json"), ABI).unwrap();
    let with_events = |events: &str| {
        format!(
            "[[chains]]\nid = 1\nrpc = [\"http://127.0.0.1:8545\"]\n\
             [[contracts]]\nname = \"ping\"\nchain = 1\naddress = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\nabi = [\"ping.json\"]\n\
             [[sinks]]\nname = \"s\"\nkind = \"redis\"\nurl = \"redis://127.0.0.1\"\nstream = \"s\"\nevents = {events}\n"
        )
    };
    let good = r#"["ping.Ping", "ping.*", "transaction.*", "transaction.included", "webhook.gemforce", "webhook.*"]"#;
    let settings = load_str(&with_events(good), Path::new("x"), dir.path(), &env(&[])).unwrap();
    assert_eq!(settings.sinks[0].events.len(), 6);

    let bad = r#"["transaction.mined", "webhook.github", "pong.*", "nodot", "transaction."]"#;
    let found = problems(load_str(&with_events(bad), Path::new("x"), dir.path(), &env(&[])));
    assert!(found[0].starts_with("sinks[0].events[0]: \"mined\" is not a transaction state"), "{found:?}");
    assert!(found[0].contains("included"), "the valid states are listed: {found:?}");
    assert!(found[1].starts_with("sinks[0].events[1]: \"github\" is not a webhook source"), "{found:?}");
    assert!(found[2].starts_with("sinks[0].events[2]: contract \"pong\" is not configured"), "{found:?}");
    assert!(found[3].starts_with("sinks[0].events[3]: \"nodot\" is not of the form"), "{found:?}");
    assert!(found[4].starts_with("sinks[0].events[4]"), "{found:?}");
    assert_eq!(found.len(), 5, "{found:?}");

    let reserved = with_events("[]").replace("name = \"ping\"", "name = \"transaction\"");
    let found = problems(load_str(&reserved, Path::new("x"), dir.path(), &env(&[])));
    assert!(
        found.iter().any(|p| p.starts_with("contracts[0].name: \"transaction\" is reserved")),
        "{found:?}"
    );
}

#[test]
fn cors_origins_and_websocket_lists_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
        [api]
        cors_origins = ["https://App.example.com", "http://127.0.0.1:5173", "https://example.org:443", "*"]
        [[chains]]
        id = 1
        rpc = ["http://127.0.0.1:8545"]
        ws = ["ws://127.0.0.1:8545", "wss://node.example.com/ws"]
    "#;
    let settings = load_str(text, Path::new("x"), dir.path(), &env(&[])).unwrap();
    assert_eq!(
        settings.api.cors.origins,
        ["https://app.example.com", "http://127.0.0.1:5173", "https://example.org"],
        "origins are kept as browsers send them"
    );
    assert!(settings.api.cors.any_origin_reads);
    assert_eq!(settings.chains[0].ws.len(), 2);

    let one = load_str(
        "[[chains]]\nid = 1\nrpc = [\"http://127.0.0.1:8545\"]\nws = \"ws://127.0.0.1:8545\"\n",
        Path::new("x"),
        dir.path(),
        &env(&[]),
    )
    .unwrap();
    assert_eq!(one.chains[0].ws.len(), 1, "a single URL is a list of one");
    assert!(load_with_env(None, &BTreeMap::new()).unwrap().chains.is_empty());
    assert!(!load_with_env(None, &BTreeMap::new()).unwrap().api.cors.is_enabled(), "CORS is off by default");

    let bad = r#"
        [api]
        cors_origins = ["https://app.example.com/", "app.example.com", "https://app.example.com/path", "ftp://x"]
        [[chains]]
        id = 1
        rpc = ["http://127.0.0.1:8545"]
        ws = ["http://127.0.0.1:8545"]
    "#;
    let found = problems(load_str(bad, Path::new("x"), dir.path(), &env(&[])));
    for i in 0..4 {
        let key = format!("api.cors_origins[{i}]: ");
        assert!(found.iter().any(|p| p.starts_with(&key)), "{key} in {found:#?}");
    }
    assert!(found.iter().any(|p| p.starts_with("chains[0].ws[0]: scheme \"http\"")), "{found:#?}");
    assert_eq!(found.len(), 5, "{found:#?}");
}

#[test]
fn relayers_name_their_chain_signer_allowlist_and_quotas() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ping.json"), ABI).unwrap();
    let base = r#"
        [[chains]]
        id = 31337
        rpc = ["http://127.0.0.1:8545"]
        [[contracts]]
        name = "gemforce"
        chain = 31337
        address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
        abi = ["ping.json"]
        [[signers]]
        name = "sponsor"
        kind = "local"
        key_env = "K"
        chains = [31337]
    "#;
    let key = ("K", "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
    let good = format!(
        r#"{base}
        [[relayers]]
        name = "carbon"
        chain = 31337
        forwarder = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
        signer = "sponsor"
        max_gas_price_gwei = 50
        budget_wei = "1000000000000000000"
        max_value_wei = "5"
        [[relayers.allow]]
        to = "gemforce"
        functions = ["retireCarbonCredits(uint256 tokenId, uint256 amount)", "0xa9059cbb"]
        [relayers.per_user]
        requests = 20
        window = "10m"
        [relayers.per_key]
        gas_per_day = 5000000
        wei_per_day = "100000000000000000"
        [relayers.batch]
        max = 10
        wait = "50ms"
    "#
    );
    let settings = load_str(&good, Path::new("x"), dir.path(), &env(&[key])).unwrap();
    let relayer = &settings.relayers[0];
    assert_eq!(relayer.forwarder.to_string(), "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512");
    assert_eq!(relayer.max_gas_price, Some(50_000_000_000));
    assert_eq!(relayer.budget_wei.unwrap().to_string(), "1000000000000000000");
    assert_eq!(relayer.max_value_wei.to_string(), "5");
    assert_eq!(relayer.allow[0].to.to_string(), "0x5FbDB2315678afecb367f032d93F642f64180aa3");
    // keccak256("retireCarbonCredits(uint256,uint256)")[..4]
    let retire = alloy_primitives::keccak256("retireCarbonCredits(uint256,uint256)");
    assert_eq!(relayer.allow[0].selectors, vec![retire[..4].try_into().unwrap(), [0xa9, 0x05, 0x9c, 0xbb]]);
    assert_eq!(relayer.per_user.requests, Some(20));
    assert_eq!(relayer.per_user.window.as_secs(), 600);
    assert_eq!(relayer.per_key.window.as_secs(), 3600, "the window defaults to an hour");
    assert_eq!(relayer.per_key.gas_per_day, Some(5_000_000));
    assert_eq!((relayer.batch.max, relayer.batch.wait.as_millis()), (10, 50));
    assert_eq!(relayer.batch.refund_receiver, None, "refunds go to the paying signer by default");

    let bad = format!(
        r#"{base}
        [[relayers]]
        name = "bad name"
        chain = 5
        forwarder = "0x123"
        signer = "nobody"
        budget_wei = "1 ether"
        max_value_wei = "-1"
        [relayers.per_user]
        window = "soon"
        [relayers.batch]
        max = 0
        refund_receiver = "nobody"
        [[relayers]]
        name = "open"
        chain = 31337
        forwarder = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
        signer = "sponsor"
        [[relayers]]
        name = "typo"
        chain = 31337
        forwarder = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
        signer = "sponsor"
        [[relayers.allow]]
        to = "gemforc"
        functions = ["retire(uint256"]
    "#
    );
    let found = problems(load_str(&bad, Path::new("x"), dir.path(), &env(&[key])));
    let expect = [
        "relayers[0].name",
        "relayers[0].chain: chain 5 is not in [[chains]]",
        "relayers[0].forwarder",
        "relayers[0].signer: \"nobody\" is not in [[signers]]",
        "relayers[0].budget_wei",
        "relayers[0].max_value_wei",
        "relayers[0].per_user.window",
        "relayers[0].batch.max: 0 is not between 1 and 100",
        "relayers[0].batch.refund_receiver",
        "relayers[1].allow: a relayer relays only what its allowlist names",
        "relayers[2].allow[0].to",
        "relayers[2].allow[0].functions[0]",
    ];
    for start in expect {
        assert!(found.iter().any(|p| p.starts_with(start)), "missing {start:?} in {found:?}");
    }
}

#[test]
fn webhook_signatures_and_cloudevents_formats_are_chosen_per_sink() {
    use gemgate_config::{MessageFormat, WebhookSignature};
    let dir = tempfile::tempdir().unwrap();
    let sinks = |body: &str| format!("[[sinks]]\nname = \"s\"\n{body}\n");
    let load = |body: &str, secret: &str| {
        load_str(&sinks(body), Path::new("x"), dir.path(), &env(&[("HOOK_SECRET", secret)]))
    };
    let hook = "kind = \"webhook\"\nurl = \"https://example.com/h\"\nsecret_env = \"HOOK_SECRET\"";
    let good = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    let settings = load(hook, good).unwrap();
    let SinkKind::Webhook { signature, .. } = &settings.sinks[0].kind else { panic!("a webhook") };
    assert_eq!(*signature, WebhookSignature::Standard, "Standard Webhooks by default");
    assert_eq!(settings.sinks[0].format, MessageFormat::Envelope);

    for weak in ["plain-secret", "whsec_c2hvcnQ=", "whsec_***"] {
        let found = problems(load(hook, weak));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("sinks[0].secret: "), "{found:?}");
        assert!(found[0].contains("signature = \"gemgate\""), "the way out is named: {found:?}");
        assert!(!found[0].contains(weak), "the secret is not echoed: {found:?}");
    }
    let own = load(&format!("{hook}\nsignature = \"gemgate\""), "plain-secret").unwrap();
    let SinkKind::Webhook { signature, .. } = &own.sinks[0].kind else { panic!("a webhook") };
    assert_eq!(*signature, WebhookSignature::Gemgate);

    let binary = load(&format!("{hook}\nformat = \"cloudevents\"\ncontent_mode = \"binary\""), good).unwrap();
    assert_eq!(binary.sinks[0].format, MessageFormat::CloudeventsBinary);
    let structured = load(&format!("{hook}\nformat = \"cloudevents\""), good).unwrap();
    assert_eq!(structured.sinks[0].format, MessageFormat::CloudeventsStructured);

    let redis = "kind = \"redis\"\nurl = \"redis://127.0.0.1\"\nstream = \"s\"\nformat = \"cloudevents\"";
    let found = problems(load(&format!("{redis}\ncontent_mode = \"binary\""), good));
    assert!(found[0].starts_with("sinks[0].content_mode: Redis Streams has no"), "{found:?}");
    let found = problems(load(&format!("{hook}\nsignature = \"svix\"\nformat = \"xml\""), good));
    assert!(found.iter().any(|p| p.starts_with("sinks[0].signature: unknown signature scheme")), "{found:?}");
    assert!(found.iter().any(|p| p.starts_with("sinks[0].format: unknown format \"xml\"")), "{found:?}");
    let found = problems(load(&format!("{hook}\ncontent_mode = \"binary\""), good));
    assert!(found[0].starts_with("sinks[0].content_mode: applies to format = \"cloudevents\""), "{found:?}");
}
