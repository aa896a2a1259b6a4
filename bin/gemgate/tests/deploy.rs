//! The deployment in `deploy/`: the compose file is valid (by `docker compose config` where Docker Compose
//! exists, and always by the Compose Specification's JSON schema, vendored in `deploy/schema/`) and runs two
//! of every part with health checks; the Kubernetes manifests validate against the Kubernetes schemas (the
//! `kubernetes-validate` package) and probe every part; the shared configuration passes `gemgate config
//! check`. Each validator is shown to refuse a broken copy, so the checks can fail.

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// A tool the test needs is missing: a failure under CI, a visible skip elsewhere (`false`).
fn missing(test: &str, what: &str) -> bool {
    assert!(!gemgate_testkit::under_ci(), "{test}: {what} is missing under CI");
    eprintln!("SKIPPED {test}: {what} is missing");
    false
}

/// The YAML documents of `file` as JSON (PyYAML, merge keys resolved).
fn yaml_documents(file: &Path) -> Option<Vec<serde_json::Value>> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(file)
        .output()
        .ok()?;
    out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// Validates `file` against the vendored Compose Specification schema; the messages when it does not.
fn compose_schema_errors(file: &Path) -> Result<(), String> {
    let script = "import sys, json, yaml, jsonschema\n\
                  schema = json.load(open(sys.argv[1]))\n\
                  doc = yaml.safe_load(open(sys.argv[2]))\n\
                  errors = list(jsonschema.Draft7Validator(schema).iter_errors(doc))\n\
                  [print('/'.join(map(str, e.path)), e.message) for e in errors]\n\
                  sys.exit(1 if errors else 0)";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(deploy().join("schema/compose-spec.json"))
        .arg(file)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

fn python_has(modules: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_compose_file_is_valid_and_runs_two_of_every_part_with_health_checks() {
    let test = "the_compose_file_is_valid_and_runs_two_of_every_part_with_health_checks";
    let compose = deploy().join("docker-compose.yml");
    let docker_compose =
        Command::new("docker").args(["compose", "version"]).output().is_ok_and(|o| o.status.success());
    if docker_compose {
        let out = Command::new("docker")
            .args(["compose", "-f"])
            .arg(&compose)
            .args(["config", "-q"])
            .output()
            .unwrap();
        assert!(out.status.success(), "docker compose config: {}", String::from_utf8_lossy(&out.stderr));
    } else {
        eprintln!("{test}: no `docker compose` here; validating with the Compose Specification schema alone");
    }
    if !python_has("yaml, jsonschema") && !missing(test, "Python with PyYAML and jsonschema") {
        return;
    }
    compose_schema_errors(&compose).unwrap_or_else(|e| panic!("{}: {e}", compose.display()));
    // The schema check refuses what Compose would: a misspelt key.
    let text = std::fs::read_to_string(&compose).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("docker-compose.yml");
    std::fs::write(&broken, text.replacen("replicas: 2", "replica: 2", 1)).unwrap();
    assert!(compose_schema_errors(&broken).is_err(), "a broken compose file is refused");

    let doc = yaml_documents(&compose).unwrap().remove(0);
    let services = doc["services"].as_object().unwrap();
    for (name, command) in
        [("indexer", "index"), ("dispatcher", "dispatch"), ("txm", "txm"), ("api", "serve")]
    {
        let service = &services[name];
        assert_eq!(service["deploy"]["replicas"], 2, "{name}: two replicas");
        assert_eq!(service["command"][0], command, "{name}: runs `gemgate {command}`");
        let check = service["healthcheck"]["test"].as_array().unwrap();
        assert!(
            check.iter().any(|t| t.as_str().is_some_and(|t| t.ends_with("/ready"))),
            "{name}: probes /ready"
        );
        assert_eq!(service["depends_on"]["migrate"]["condition"], "service_completed_successfully");
    }
    for name in ["postgres", "rabbitmq", "proxy", "migrate"] {
        assert!(services.contains_key(name), "the compose file has {name}");
    }
}

#[test]
fn the_kubernetes_manifests_validate_and_probe_every_part() {
    let test = "the_kubernetes_manifests_validate_and_probe_every_part";
    let k8s = deploy().join("k8s");
    let validator =
        Command::new("kubernetes-validate").arg("--version").output().is_ok_and(|o| o.status.success());
    if !validator && !missing(test, "kubernetes-validate (pip install kubernetes-validate)") {
        return;
    }
    let validate = |file: &Path| {
        Command::new("kubernetes-validate")
            .args(["-k", "1.30", "--strict", "--quiet"])
            .arg(file)
            .output()
            .unwrap()
    };
    let mut deployments = Vec::new();
    for entry in std::fs::read_dir(&k8s).unwrap() {
        let file = entry.unwrap().path();
        if file.file_name().is_some_and(|n| n == "kustomization.yaml") {
            continue;
        }
        let out = validate(&file);
        assert!(
            out.status.success(),
            "{}: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for doc in yaml_documents(&file).unwrap() {
            if doc["kind"] == "Deployment" {
                deployments.push(doc);
            }
        }
    }
    // The validator refuses a broken manifest.
    let text = std::fs::read_to_string(k8s.join("indexer.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("indexer.yaml");
    std::fs::write(&broken, text.replacen("replicas: 2", "replicas: two", 1)).unwrap();
    assert!(!validate(&broken).status.success(), "a broken manifest is refused");

    let mut names: Vec<&str> = deployments.iter().map(|d| d["metadata"]["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["gemgate-api", "gemgate-dispatcher", "gemgate-indexer", "gemgate-txm"]);
    for d in &deployments {
        let name = d["metadata"]["name"].as_str().unwrap();
        assert_eq!(d["spec"]["replicas"], 2, "{name}: two replicas");
        let container = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/health", "{name}: liveness");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready", "{name}: readiness");
        let env = container["env"].as_array().unwrap();
        assert!(env.iter().any(|e| e["name"] == "GEMGATE__CLUSTER__NAME"), "{name}: named after its pod");
    }
    // The ConfigMap holds exactly deploy/gemgate.toml.
    let configmap = yaml_documents(&k8s.join("configmap.yaml")).unwrap().remove(0);
    let shared = std::fs::read_to_string(deploy().join("gemgate.toml")).unwrap();
    assert_eq!(configmap["data"]["gemgate.toml"].as_str().unwrap().trim(), shared.trim());
}

#[test]
fn the_deployment_configuration_passes_config_check() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ops_key");
    std::fs::write(&key, "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gemgate"))
        .args(["config", "check", "--config"])
        .arg(deploy().join("gemgate.toml"))
        .env("GEMGATE__SIGNERS__0__KEY_FILE", &key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("lease_ttl"), "the cluster settings are shown: {text}");
    assert!(!text.contains("59c6995e998f"), "the key is never printed");
}
