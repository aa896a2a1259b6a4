//! The committed artifacts match their sources: a stale artifact fails here.

use gemgate_testkit::artifacts::{ARTIFACTS, contracts_dir, inputs_sha256, recorded_inputs_sha256};

#[test]
fn artifacts_are_built_from_the_current_sources() {
    let current = inputs_sha256(&contracts_dir()).unwrap();
    let recorded = recorded_inputs_sha256().unwrap();
    assert_eq!(
        current, recorded,
        "contracts/artifacts are stale: a source under contracts/src (or build.mjs, package.json) changed since \
         they were built. Run `cd contracts && npm ci && node build.mjs` and commit the artifacts."
    );
}

#[test]
fn the_staleness_hash_sees_every_source_change() {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&contracts_dir().join("src"), &copy.path().join("src"));
    for file in ["build.mjs", "package.json"] {
        std::fs::copy(contracts_dir().join(file), copy.path().join(file)).unwrap();
    }
    let before = inputs_sha256(copy.path()).unwrap();
    assert_eq!(before, recorded_inputs_sha256().unwrap(), "a faithful copy hashes the same");

    let facet = copy.path().join("src/facets/TradeDealFacet.sol");
    let mut text = std::fs::read_to_string(&facet).unwrap();
    text.push_str("\n// an edit\n");
    std::fs::write(&facet, text).unwrap();
    assert_ne!(inputs_sha256(copy.path()).unwrap(), before, "an edited source must change the hash");

    std::fs::write(copy.path().join("src/New.sol"), "// new file\n").unwrap();
    let with_new_file = inputs_sha256(copy.path()).unwrap();
    assert_ne!(with_new_file, before, "a new source must change the hash");
}

#[test]
fn every_artifact_has_an_abi_and_bytecode() {
    for artifact in ARTIFACTS {
        let abi = artifact.abi().unwrap();
        let code = artifact.bytecode().unwrap();
        assert!(code.len() > 100, "{} has no bytecode", artifact.name);
        assert!(abi.functions().count() + abi.events().count() > 0, "{} has an empty ABI", artifact.name);
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
