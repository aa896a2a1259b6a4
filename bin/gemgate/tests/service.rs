//! `gemgate index --once` and `gemgate run` as processes against anvil with the sample traffic: the
//! backfill reports progress and exits; the service indexes, follows, and answers the API.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{KillOnDrop, free_port, get};

use gemgate_testkit::{
    Anvil, AnvilOptions, Deployment, Scenario, ScenarioOptions, anvil_or_skip, deploy_gemforce,
};

async fn chain(test: &str) -> Option<(Anvil, Deployment)> {
    let anvil = anvil_or_skip(test, AnvilOptions::default()).await.unwrap()?;
    let provider = anvil.provider();
    let deployment = deploy_gemforce(&provider, anvil.accounts()[0]).await.unwrap();
    Scenario::new(&deployment, anvil.accounts(), ScenarioOptions { seed: 3, rounds: 2 })
        .unwrap()
        .run(&provider)
        .await
        .unwrap();
    Some((anvil, deployment))
}

fn config(dir: &std::path::Path, anvil: &Anvil, d: &Deployment, listen: &str) -> std::path::PathBuf {
    let path = dir.join("gemgate.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[database]
url = "sqlite://{db}"
[api]
listen = "{listen}"
[[chains]]
id = 31337
rpc = ["{rpc}"]
poll_interval = "50ms"
[[contracts]]
name = "gemforce"
chain = 31337
address = "{diamond}"
diamond = true
start_block = {start}
"#,
            db = dir.join("gemgate.db").display(),
            rpc = anvil.endpoint(),
            diamond = d.diamond,
            start = d.start_block,
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_once_backfills_with_progress_and_exits() {
    let Some((anvil, deployment)) = chain("index_once_backfills_with_progress_and_exits").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &anvil, &deployment, "127.0.0.1:0");
    let out = Command::new(env!("CARGO_BIN_EXE_gemgate"))
        .args(["index", "--once", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("caught up at block"), "{stderr}");
    assert!(stderr.contains("blocks/s") && stderr.contains("events/s") && stderr.contains("ETA"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_indexes_follows_and_serves_the_api() {
    let Some((anvil, deployment)) = chain("run_indexes_follows_and_serves_the_api").await else { return };
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = config(dir.path(), &anvil, &deployment, &listen);
    let _child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_gemgate"))
            .args(["run", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://{listen}");
    {
        // Follows new blocks too: mine more after start and wait for the status to reach them.
        anvil.mine(5).await.unwrap();
        let head = anvil.block_number().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Ok((200, status))) = tokio::time::timeout(
                Duration::from_secs(2),
                tokio::spawn(get_owned(format!("{base}/v1/status"))),
            )
            .await
                && status["chains"][0]["indexed"].as_u64() >= Some(head)
            {
                assert_eq!(status["chains"][0]["head"].as_u64().map(|h| h >= head), Some(true));
                break;
            }
            assert!(Instant::now() < deadline, "the service did not reach block {head}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (status, page) = get(&format!("{base}/v1/events?event=TradeDealCreated&limit=1")).await;
        assert_eq!(status, 200);
        assert_eq!(page["events"][0]["args"]["tradeDealId"], "1");
        assert_eq!(page["events"][0]["status"], "canonical");
        let next = page["next"].as_str().unwrap().to_string();
        let (_, second) = get(&format!("{base}/v1/events?event=TradeDealCreated&limit=1&after={next}")).await;
        assert_eq!(
            second["events"][0]["args"]["tradeDealId"], "2",
            "cursor pagination continues after the first page"
        );
        let (status, deal) = get(&format!("{base}/v1/trade-deals/2")).await;
        assert_eq!(status, 200);
        assert_eq!(deal["fully_repaid"], true);
        let (status, _) = get(&format!("{base}/v1/trade-deals/99")).await;
        assert_eq!(status, 404);
        for bad in [
            "/v1/events?address=0x12",
            "/v1/events?limit=0",
            "/v1/events?from_block=9&to_block=1",
            "/v1/events?colour=red",
            "/v1/trade-deals/abc",
        ] {
            let (status, body) = get(&format!("{base}{bad}")).await;
            assert_eq!(status, 400, "{bad}");
            assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{bad}: {body}");
        }
        let (status, openapi) = get(&format!("{base}/v1/openapi.json")).await;
        assert_eq!(status, 200);
        assert!(openapi["paths"]["/v1/events"].is_object());
        let (status, _) = get(&format!("{base}/ready")).await;
        assert_eq!(status, 200);
    }
}

/// Kills the service when the test ends, passed or failed.
async fn get_owned(url: String) -> (u16, serde_json::Value) {
    get(&url).await
}
