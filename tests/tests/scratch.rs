//! Scratch, the distributed cache and lock (issue 17, item 3): cmod's `Scratch` client against
//! the local Foundry's Scratch endpoints over TLS (trusting `CONNECTIONS_TO_OTHER_PODS_CA_PATH`),
//! and the `scratch-cache` example run as a process on the embedded local runtime.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::collections::HashMap;
use std::future::Future;
use std::process::Stdio;
use std::time::Duration;

use cmod_local::foundry::{DataOptions, LocalFoundry};
use cmod_runtime::{Scratch, ScratchError, Ttl};
use serde_json::{Value, json};

const EXAMPLE: &str = env!("CARGO_BIN_EXE_example-scratch-cache");

/// Every test is bounded by this.
const LIMIT: Duration = Duration::from_secs(60);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test timed out")
}

/// The variables a module gets: the local Foundry's, with the pods CA naming the same CA.
fn env(foundry: &LocalFoundry) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = foundry.env().into_iter().collect();
    env.insert(
        "CONNECTIONS_TO_OTHER_PODS_CA_PATH".to_owned(),
        foundry.ca_path().display().to_string(),
    );
    env
}

fn scratch(env: &HashMap<String, String>) -> Scratch {
    Scratch::from_lookup(&|k| env.get(k).cloned()).unwrap()
}

async fn foundry() -> (LocalFoundry, tempfile::TempDir) {
    cmod_tests::foundry::start(DataOptions::default(), None).await
}

#[tokio::test]
async fn cache_values_round_trip_and_expire_with_their_ttl() {
    bounded(async {
        let (foundry, _dir) = foundry().await;
        let s = scratch(&env(&foundry));
        assert_eq!(s.get::<Vec<u32>>("k").await.unwrap(), None);
        assert!(!s.exists("k").await.unwrap());

        s.set("k", &vec![1u32, 2, 3], Ttl::OneMinute).await.unwrap();
        s.set("long", &json!({"a": 1}), Ttl::OneHour).await.unwrap();
        assert_eq!(s.get::<Vec<u32>>("k").await.unwrap(), Some(vec![1, 2, 3]));
        assert!(s.exists("k").await.unwrap());
        let many: HashMap<String, Value> = s.get_many(&["k", "long", "absent"]).await.unwrap();
        assert_eq!(many.len(), 2, "{many:?}");
        assert_eq!(many["long"], json!({"a": 1}));

        // A value of the wrong type names the key and the type.
        let err = s.get::<String>("long").await.unwrap_err().to_string();
        assert!(
            err.contains("key `long`") && err.contains("String"),
            "{err}"
        );

        // TTLs: after 61 s the one-minute value is gone, the one-hour value is not.
        foundry.advance_scratch_clock(Duration::from_secs(61));
        assert_eq!(s.get::<Vec<u32>>("k").await.unwrap(), None);
        assert!(s.exists("long").await.unwrap());
        s.delete("long").await.unwrap();
        assert!(!s.exists("long").await.unwrap());

        // Raw strings, as Python modules store them.
        s.set_raw("py", "plain text", Ttl::FiveMinutes)
            .await
            .unwrap();
        assert_eq!(
            s.get_raw("py").await.unwrap().as_deref(),
            Some("plain text")
        );
        assert_eq!(
            s.get::<String>("py").await.unwrap().as_deref(),
            Some("plain text")
        );
        s.set("typed", "text", Ttl::FiveMinutes).await.unwrap();
        assert_eq!(
            s.get_raw("typed").await.unwrap().as_deref(),
            Some("\"text\"")
        );
    })
    .await;
}

#[tokio::test]
async fn a_lock_is_exclusive_refreshed_while_held_and_released_on_drop() {
    bounded(async {
        let (foundry, _dir) = foundry().await;
        let env = env(&foundry);
        let a = scratch(&env).lock_refresh_interval(Duration::from_millis(100));
        let b = scratch(&env);
        let guard = a
            .try_lock("job")
            .await
            .unwrap()
            .expect("a free lock is acquired");
        assert_eq!(guard.name(), "job");
        assert!(b.try_lock("job").await.unwrap().is_none(), "held by a");
        assert!(b.try_lock("other").await.unwrap().is_some());

        // 15 s pass twice; refreshes in between keep the 20 s lock alive.
        for _ in 0..2 {
            let before = foundry.scratch_stats().refreshes;
            foundry.advance_scratch_clock(Duration::from_secs(15));
            while foundry.scratch_stats().refreshes < before + 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        assert!(guard.is_held());
        assert!(
            b.try_lock("job").await.unwrap().is_none(),
            "refreshed: still held"
        );

        // Dropping the guard releases the lock (on a spawned task).
        drop(guard);
        let acquired = loop {
            if let Some(g) = b.try_lock("job").await.unwrap() {
                break g;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(foundry.scratch_stats().unlocks >= 1);
        acquired.unlock().await.unwrap();
        assert!(b.try_lock("job").await.unwrap().is_some());
    })
    .await;
}

#[tokio::test]
async fn a_lock_nobody_refreshes_expires_after_20_seconds() {
    bounded(async {
        let (foundry, _dir) = foundry().await;
        let env = env(&foundry);
        let stale = scratch(&env).lock_refresh_interval(Duration::from_secs(3600));
        let guard = stale.try_lock("job").await.unwrap().unwrap();
        foundry.advance_scratch_clock(Duration::from_secs(19));
        assert!(scratch(&env).try_lock("job").await.unwrap().is_none());
        foundry.advance_scratch_clock(Duration::from_secs(2));
        let taken = scratch(&env).try_lock("job").await.unwrap();
        assert!(taken.is_some(), "expired 20 s after the last refresh");
        drop(guard);

        // A guard whose lock expired before its next refresh learns it: the refresh is refused.
        let quick = scratch(&env).lock_refresh_interval(Duration::from_millis(100));
        let guard = quick.try_lock("short").await.unwrap().unwrap();
        foundry.advance_scratch_clock(Duration::from_secs(21));
        while guard.is_held() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn errors_are_typed_and_never_show_the_token() {
    bounded(async {
        let (foundry, _dir) = foundry().await;
        let env = env(&foundry);

        // Not enabled: the variable is named.
        let mut without = env.clone();
        without.remove("SCRATCH_TOKEN");
        let err = Scratch::from_lookup(&|k| without.get(k).cloned()).unwrap_err();
        assert!(matches!(err, ScratchError::NotEnabled { .. }), "{err:?}");
        assert!(err.to_string().contains("SCRATCH_TOKEN"), "{err}");

        // A refused token: 401, without the token in the message.
        let mut wrong = env.clone();
        wrong.insert("SCRATCH_TOKEN".to_owned(), "planted-wrong-token".to_owned());
        let err = scratch(&wrong).get::<u32>("k").await.unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(text.contains("401") && text.contains("key `k`"), "{text}");
        assert!(!text.contains("planted-wrong-token"), "{text}");
        assert!(!format!("{:?}", scratch(&wrong)).contains("planted-wrong-token"));

        let s = scratch(&env);
        // 429 and 503 are retried (4 retries), then typed.
        foundry.fail_next_requests_to("/scratch/api/v1/cache/get", 5, 429);
        let err = s.get::<u32>("k").await.unwrap_err();
        assert!(matches!(err, ScratchError::RateLimited { .. }), "{err:?}");
        foundry.fail_next_requests_to("/scratch/api/v1/cache/exists", 5, 503);
        let err = s.exists("k").await.unwrap_err();
        assert!(
            matches!(err, ScratchError::Unavailable { status: 503, .. }),
            "{err:?}"
        );
        // A transient 503 is retried away.
        foundry.fail_next_requests_to("/scratch/api/v1/cache/exists", 2, 503);
        assert!(!s.exists("k").await.unwrap());
        // 403 / 404: Scratch disabled.
        foundry.fail_next_requests_to("/scratch/api/v1/lock/try-lock", 1, 403);
        let err = s.try_lock("job").await.unwrap_err();
        assert!(
            matches!(err, ScratchError::Disabled { status: 403, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("lock `job`"), "{err}");

        let keys: Vec<String> = (0..101).map(|i| format!("k{i}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let err = s.get_many::<u32>(&keys).await.unwrap_err();
        assert!(
            matches!(
                err,
                ScratchError::TooManyKeys {
                    count: 101,
                    max: 100
                }
            ),
            "{err:?}"
        );
    })
    .await;
}

/// The example, as its docs run it: three calls on the embedded local runtime, whose local
/// Foundry serves Scratch. The second call finds the first one's value in the cache.
#[tokio::test]
async fn the_example_caches_through_the_local_foundry() {
    let mut cmd = tokio::process::Command::new(EXAMPLE);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args([
            "--local",
            "--invoke",
            "exchange_rate",
            r#"{"currency": "EUR"}"#,
            "--invoke",
            "exchange_rate",
            r#"{"currency": "EUR"}"#,
            "--invoke",
            "refresh_rates",
            "{}",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = bounded(cmd.output()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{all}");
    let results: Vec<Value> = stdout
        .lines()
        .filter_map(|l| l.split_once(" => ").map(|(_, r)| r))
        .map(|r| serde_json::from_str(r).unwrap_or_else(|e| panic!("{r}: {e}")))
        .collect();
    assert_eq!(
        results,
        [
            json!({"currency": "EUR", "per_usd": 0.92, "cached": false}),
            json!({"currency": "EUR", "per_usd": 0.92, "cached": true}),
            json!("refreshed 3 rates"),
        ],
        "{all}"
    );
}
