//! Full verifications, run in the background: a large log takes longer than any RPC deadline,
//! so a client starts one and polls its progress.

use super::verify::{Mode, VerifyReport};
use super::{AuditLog, verify};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Finished jobs kept for their reports.
const KEEP: usize = 16;

#[derive(Debug, Clone)]
pub struct JobStatus {
    pub id: String,
    pub started_ms: i64,
    /// 0 while running.
    pub finished_ms: i64,
    pub events_checked: u64,
    pub events_total: u64,
    pub report: Option<VerifyReport>,
    /// Why the job could not run to its end (the store could not be read).
    pub error: String,
}

struct Job {
    status: Mutex<JobStatus>,
    checked: AtomicU64,
    total: AtomicU64,
}

#[derive(Default, Clone)]
pub struct Jobs(Arc<Mutex<BTreeMap<String, Arc<Job>>>>);

impl Jobs {
    /// Starts a full verification; returns its id.
    pub fn start(&self, log: AuditLog) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        let job = Arc::new(Job {
            status: Mutex::new(JobStatus {
                id: id.clone(),
                started_ms: crate::time::now_ms(),
                finished_ms: 0,
                events_checked: 0,
                events_total: 0,
                report: None,
                error: String::new(),
            }),
            checked: AtomicU64::new(0),
            total: AtomicU64::new(0),
        });
        if let Ok(mut jobs) = self.0.lock() {
            while jobs.len() >= KEEP {
                let Some(oldest) = jobs.keys().next().cloned() else {
                    break;
                };
                jobs.remove(&oldest);
            }
            jobs.insert(id.clone(), job.clone());
        }
        tokio::spawn(async move {
            let progress = |checked: u64, total: u64| {
                job.checked.store(checked, Ordering::Relaxed);
                job.total.store(total, Ordering::Relaxed);
            };
            let trust = log.trust().await;
            let result =
                verify::verify(log.store().as_ref(), &trust, Mode::Full, Some(&progress)).await;
            if let Ok(mut s) = job.status.lock() {
                s.finished_ms = crate::time::now_ms();
                match result {
                    Ok(report) => s.report = Some(report),
                    Err(e) => s.error = e.to_string(),
                }
            }
        });
        id
    }

    pub fn status(&self, id: &str) -> Option<JobStatus> {
        let job = self.0.lock().ok()?.get(id).cloned()?;
        let mut s = job.status.lock().ok()?.clone();
        if let Some(r) = &s.report {
            s.events_checked = r.events_checked;
            s.events_total = r.events_checked.max(job.total.load(Ordering::Relaxed));
        } else {
            s.events_checked = job.checked.load(Ordering::Relaxed);
            s.events_total = job.total.load(Ordering::Relaxed);
        }
        Some(s)
    }
}
