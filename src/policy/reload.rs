//! Hot reload: a change to the policy directory (polled) or SIGHUP loads the new policy
//! beside the old one; [`super::Policy::reload`] swaps it in only if it checks out. Each
//! reload that took effect is reported on a channel (what triggered it, the versions), so
//! the service can audit it without this module knowing about the audit trail.

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use tokio::sync::mpsc;

use super::{Policy, Reloaded};

/// What made the service reload its policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The directory watch saw a change.
    FileWatch,
    /// The process got SIGHUP.
    Sighup,
}

impl Trigger {
    /// How an audit event names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::FileWatch => "file watch",
            Trigger::Sighup => "SIGHUP",
        }
    }
}

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
/// runtime lives. Every reload that took effect is sent on the returned channel.
pub fn spawn(
    policy: Policy,
    interval: Option<Duration>,
) -> mpsc::UnboundedReceiver<(Trigger, Reloaded)> {
    let (sender, receiver) = mpsc::unbounded_channel();
    if let Some(interval) = interval {
        let policy = policy.clone();
        let sender = sender.clone();
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
                if let Ok(Ok(reloaded)) = tokio::task::spawn_blocking(move || policy.reload()).await
                {
                    let _ = sender.send((Trigger::FileWatch, reloaded));
                }
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
            if let Ok(Ok(reloaded)) = tokio::task::spawn_blocking(move || policy.reload()).await {
                let _ = sender.send((Trigger::Sighup, reloaded));
            }
        }
    });
    receiver
}
