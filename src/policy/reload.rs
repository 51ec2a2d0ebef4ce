//! Hot reload: a change to the policy directory (polled) or SIGHUP loads the new policy
//! beside the old one; [`super::Policy::reload`] swaps it in only if it checks out.

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::Policy;

/// A digest of every `*.polar`, `notices.json` and `tests/*.cases` file: names and contents.
pub fn fingerprint(dir: &Path) -> Vec<u8> {
    let mut paths = Vec::new();
    for sub in [dir.to_owned(), dir.join("tests")] {
        if let Ok(entries) = std::fs::read_dir(&sub) {
            paths.extend(
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "polar" || e == "cases")),
            );
        }
    }
    paths.sort();
    let mut hasher = Sha256::new();
    for path in paths {
        hasher.update(path.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(&path).unwrap_or_default());
        hasher.update([0]);
    }
    hasher.finalize().to_vec()
}

/// Watches the policy directory every `interval` and reloads on SIGHUP, for as long as the
/// runtime lives.
pub fn spawn(policy: Policy, interval: Option<Duration>) {
    if let Some(interval) = interval {
        let policy = policy.clone();
        tokio::spawn(async move {
            let mut seen = fingerprint(policy.dir());
            // A change is loaded once it has held still for one interval, so a file caught
            // half-written by an editor is not loaded (and reported) on its way.
            let mut settling: Option<Vec<u8>> = None;
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let now = fingerprint(policy.dir());
                if now == seen {
                    settling = None;
                    continue;
                }
                if settling.as_ref() != Some(&now) {
                    settling = Some(now);
                    continue;
                }
                settling = None;
                seen = now;
                let policy = policy.clone();
                // Loading and checking is CPU work; keep it off the async workers.
                let _ = tokio::task::spawn_blocking(move || policy.reload()).await;
            }
        });
    }
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; policy reload on signal is off");
            return;
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the policy");
            let policy = policy.clone();
            let _ = tokio::task::spawn_blocking(move || policy.reload()).await;
        }
    });
}
