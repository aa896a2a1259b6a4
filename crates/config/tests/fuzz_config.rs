//! Configuration parsing on hostile input, property-based on stable Rust: a full, valid file with lines
//! dropped, duplicated, cut or given hostile values (huge numbers, wrong types, empty strings, long text,
//! control bytes), and `GEMGATE__` overrides with arbitrary keys and values (a database URL with a password
//! among them). Loading never panics; it answers settings or problems, and no problem ever repeats a secret
//! from the file or the environment.

use std::collections::BTreeMap;
use std::path::Path;

use gemgate_config::load_str;
use proptest::prelude::*;

const SECRET: &str = "pw-s3cr3t-9f2c";
const ENV_SECRET: &str = "whsec_c2VjcmV0LWZyb20tdGhlLWVudmlyb25tZW50LTEyMzQ1Njc4";

const BASE: &str = r#"[database]
url = "postgres://gemgate:pw-s3cr3t-9f2c@127.0.0.1/gemgate"
max_connections = 8
[api]
listen = "127.0.0.1:9000"
public_reads = false
max_body_bytes = 1048576
[[api.keys]]
name = "backend"
key_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
scopes = ["read", "transact"]
[api.rate_limits]
transact = { per_second = 50, burst = 100 }
[[chains]]
id = 31337
rpc = ["http://127.0.0.1:8545"]
poll_interval = "250ms"
confirmations = 12
[[contracts]]
name = "ping"
chain = 31337
address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
abi = ["ping.json"]
start_block = 0
[[sinks]]
name = "hooks"
kind = "webhook"
url = "http://127.0.0.1:9999/hook"
secret_env = "FUZZ_HOOK_SECRET"
finality = "safe"
[[signers]]
name = "ops"
kind = "local"
key_env = "FUZZ_OPS_KEY"
chains = [31337]
[txm]
poll_interval = "100ms"
"#;

const ABI: &str = r#"[{"type":"event","name":"Ping","inputs":[{"name":"n","type":"uint256","indexed":true}],"anonymous":false}]"#;

fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("-1".to_string()),
        Just("18446744073709551616".to_string()),
        Just("1e400".to_string()),
        Just("\"\"".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("true".to_string()),
        Just("\"0x\"".to_string()),
        Just("\"not a url\"".to_string()),
        Just(format!("\"{}\"", "a".repeat(5_000))),
        Just("\"\\u0000\"".to_string()),
        Just("[[[[[[[[[[1]]]]]]]]]]".to_string()),
        "\"[^\"\\\\]{0,40}\"",
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    Drop(prop::sample::Index),
    Duplicate(prop::sample::Index),
    Value(prop::sample::Index, String),
    Cut(prop::sample::Index),
    Bytes(prop::sample::Index, Vec<u8>),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Edit::Drop),
        any::<prop::sample::Index>().prop_map(Edit::Duplicate),
        (any::<prop::sample::Index>(), hostile_value()).prop_map(|(i, v)| Edit::Value(i, v)),
        any::<prop::sample::Index>().prop_map(Edit::Cut),
        (any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Edit::Bytes(i, b)),
    ]
}

fn apply(edits: &[Edit]) -> String {
    let mut lines: Vec<String> = BASE.lines().map(str::to_string).collect();
    for edit in edits {
        if lines.is_empty() {
            break;
        }
        match edit {
            Edit::Drop(i) => {
                lines.remove(i.index(lines.len()));
            }
            Edit::Duplicate(i) => {
                let at = i.index(lines.len());
                lines.insert(at, lines[at].clone());
            }
            Edit::Value(i, value) => {
                let at = i.index(lines.len());
                if let Some((key, _)) = lines[at].split_once(" = ") {
                    lines[at] = format!("{key} = {value}");
                }
            }
            Edit::Cut(i) => {
                let at = i.index(lines.len());
                let line = &lines[at];
                let cut = line.char_indices().nth(line.chars().count() / 2).map_or(0, |(b, _)| b);
                lines[at] = line[..cut].to_string();
            }
            Edit::Bytes(i, bytes) => {
                let at = i.index(lines.len());
                lines[at].push_str(&String::from_utf8_lossy(bytes));
            }
        }
    }
    lines.join("\n")
}

fn load(text: &str, env: &BTreeMap<String, String>, dir: &Path) {
    match load_str(text, &dir.join("gemgate.toml"), dir, env) {
        Ok(settings) => {
            let shown = settings.to_redacted_toml();
            assert!(
                !shown.contains(SECRET) && !shown.contains(ENV_SECRET),
                "config check would show a secret"
            );
        }
        Err(error) => {
            let said = format!(
                "{error} {error:?} {}",
                error.problems().iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
            );
            assert!(!said.contains(SECRET), "a problem repeats the database password: {said}");
            assert!(!said.contains(ENV_SECRET), "a problem repeats the webhook secret: {said}");
        }
    }
}

fn base_env() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("FUZZ_HOOK_SECRET".to_string(), ENV_SECRET.to_string()),
        (
            "FUZZ_OPS_KEY".to_string(),
            "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d".to_string(),
        ),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_500, ..ProptestConfig::default() })]

    #[test]
    fn edited_files_load_or_are_refused_without_panicking(edits in prop::collection::vec(edit(), 1..6)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ping.json"), ABI).unwrap();
        load(&apply(&edits), &base_env(), dir.path());
    }

    #[test]
    fn arbitrary_overrides_load_or_are_refused_without_panicking(
        overrides in prop::collection::vec(
            (
                prop_oneof![
                    "GEMGATE__[A-Z_]{1,12}__[A-Z_]{1,16}",
                    "GEMGATE__(CHAINS|SINKS|CONTRACTS|SIGNERS)__[0-9]{1,3}__[A-Z_]{1,12}",
                    "GEMGATE__(DATABASE__URL|API__LISTEN|API__KEYS__0__SCOPES|CHAINS__0__RPC|SINKS__0__FINALITY)",
                    "GEMGATE__.{0,20}",
                ],
                prop_oneof![hostile_value(), ".{0,30}"],
            ),
            0..4,
        ),
        url in prop_oneof![
            Just(None),
            "(postgres|sqlite|mysql|http)://[a-z]{0,5}:pw-s3cr3t-9f2c@[a-z0-9.:/%@\\[\\]]{0,20}".prop_map(Some),
        ],
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ping.json"), ABI).unwrap();
        let mut env = base_env();
        env.extend(overrides);
        // A secret-holding key given a broken value: the problem names the key, never the password.
        if let Some(url) = url {
            env.insert("GEMGATE__DATABASE__URL".to_string(), url);
        }
        load(BASE, &env, dir.path());
    }
}

#[test]
fn the_base_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ping.json"), ABI).unwrap();
    let settings = load_str(BASE, &dir.path().join("gemgate.toml"), dir.path(), &base_env()).unwrap();
    assert_eq!(settings.chains.len(), 1);
}
