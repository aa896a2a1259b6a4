//! `gemgate snapshot export|import` through the binary: a snapshot exported from SQLite imports into
//! Postgres with the same digest (exported again from there), refuses a changed record, a non-empty
//! database and a cursor block a reorg has replaced; the imported database resumes indexing from the
//! snapshot's block (reverting through the imported window and journal when a reorg cuts below it) and ends
//! equal to a fresh index of the whole chain, table by table.

#[path = "../../../crates/store/tests/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
mod projections;

use std::path::Path;

use projections::*;

/// The digest `gemgate snapshot` printed.
fn digest(stdout: &[u8]) -> String {
    let text = String::from_utf8_lossy(stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("digest sha256:"))
        .unwrap_or_else(|| panic!("no digest in {text}"))
        .to_string()
}

fn fails(mut command: std::process::Command, what: &str, expected: &str) {
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what} succeeded");
    assert!(stderr.contains(expected), "{what}: expected {expected:?} in: {stderr}");
}

fn snapshot_block(file: &Path) -> u64 {
    let header: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(file).unwrap().lines().next().unwrap()).unwrap();
    header["chains"][0]["block_number"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_snapshot_imported_into_postgres_resumes_to_a_fresh_index() {
    let test = "a_sqlite_snapshot_imported_into_postgres_resumes_to_a_fresh_index";
    let Some(target) = common::postgres(test, "snapimport").await else { return };
    let Some(other) = common::postgres(test, "snapother").await else { return };
    let Some((anvil, d)) = chain(test, 2).await else { return };
    traffic(&anvil, &d, 1, 6).await;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("source.db").display());
    let source = config(dir.path(), "source.toml", &sqlite, &anvil, &d, "127.0.0.1:0");
    succeed(gemgate(&["index", "--once"], &source), "index into SQLite");
    non_empty(&dump(&sqlite).await);

    let file = dir.path().join("snapshot.jsonl");
    let out = succeed(gemgate(&["snapshot", "export", "--out", file.to_str().unwrap()], &source), "export");
    let exported = digest(&out.stdout);
    let block = snapshot_block(&file);
    assert_eq!(block, anvil.block_number().await.unwrap(), "the cursor is the indexed head");

    // A changed record is refused, and nothing is written.
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text.lines().position(|l| l.contains("\"table\":\"gemforce_tokens\"")).unwrap();
    let tampered: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| if i == line { l.replacen("\"owner\":\"0x", "\"owner\":\"0x0", 1) } else { l.into() })
        .collect();
    let tampered_file = dir.path().join("tampered.jsonl");
    std::fs::write(&tampered_file, tampered.join("\n") + "\n").unwrap();
    let pg = config(dir.path(), "pg.toml", &target.url, &anvil, &d, "127.0.0.1:0");
    fails(
        gemgate(&["snapshot", "import", tampered_file.to_str().unwrap()], &pg),
        "tampered",
        "digest mismatch",
    );
    assert_eq!(integer(&target.url, "SELECT COUNT(*) FROM cursors").await, 0, "nothing imported");

    // Into Postgres: the same digest, exported again from there.
    let out = succeed(gemgate(&["snapshot", "import", file.to_str().unwrap()], &pg), "import");
    assert_eq!(digest(&out.stdout), exported, "import reports the file's digest");
    assert_same(&dump(&target.url).await, &dump(&sqlite).await, "imported == exported");
    let again = dir.path().join("again.jsonl");
    let out =
        succeed(gemgate(&["snapshot", "export", "--out", again.to_str().unwrap()], &pg), "export again");
    assert_eq!(digest(&out.stdout), exported, "Postgres exports the digest SQLite did");
    fails(gemgate(&["snapshot", "import", file.to_str().unwrap()], &pg), "a second import", "not empty");
    fails(gemgate(&["replay", "--from-store"], &pg), "replay", "created from a snapshot");

    // A reorg that cuts below the snapshot's block, then more traffic.
    anvil.reorg(3).await.unwrap();
    traffic(&anvil, &d, 2, 4).await;
    let pg_other = config(dir.path(), "other.toml", &other.url, &anvil, &d, "127.0.0.1:0");
    fails(
        gemgate(&["snapshot", "import", file.to_str().unwrap()], &pg_other),
        "stale",
        "no longer canonical",
    );
    assert_eq!(integer(&other.url, "SELECT COUNT(*) FROM cursors").await, 0, "nothing imported");

    // The imported database follows on: it reverts through the imported window and journal and indexes only
    // what came after the ancestor, and ends equal to a fresh index of the whole chain.
    succeed(gemgate(&["index", "--once"], &pg), "index after import");
    let fresh_url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    assert_same(&dump(&target.url).await, &fresh_index(dir.path(), &fresh_url, &anvil, &d).await, "resumed");
    let ancestor = block - 3;
    let after_ancestor =
        integer(&fresh_url, &format!("SELECT COUNT(*) FROM events WHERE block_number > {ancestor}")).await;
    assert!(after_ancestor > 0, "the new blocks have events");
    assert_eq!(
        integer(&target.url, "SELECT COUNT(*) FROM events").await,
        after_ancestor,
        "indexing resumed from the snapshot (from the reorg's ancestor), not from the start"
    );
    target.drop().await;
    other.drop().await;
}
