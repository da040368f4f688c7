//! Real `omni worker` processes: killed with SIGKILL mid-job, and stopped with SIGTERM under load.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use omni::engine::clock::SystemClock;
use omni::engine::events::EventBus;
use omni::engine::queue::{Backoff, JobId, JobStatus, NewJob, Queue};

use crate::common::{dialects, fresh};

fn spawn_worker(db_url: &str, extra_env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_omni"));
    cmd.arg("worker")
        .arg("--database")
        .arg(db_url)
        .env("OMNI__WORKERS__LEASE_MS", "1500")
        .env("OMNI__WORKERS__HEARTBEAT_MS", "300")
        .env("OMNI__WORKERS__POLL_MS", "50")
        .env("OMNI__WORKERS__RESCUE_MS", "200")
        .env("OMNI__QUEUE__BACKOFF__BASE_MS", "10")
        .env("OMNI_LOG", "warn")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn omni worker")
}

async fn wait_until<F>(
    q: &Queue,
    id: JobId,
    what: &str,
    within: Duration,
    f: F,
) -> omni::engine::queue::Job
where
    F: Fn(&omni::engine::queue::Job) -> bool,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let job = q.get(id).await.unwrap().unwrap();
        if f(&job) {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} never became {what}: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn killed_worker_job_is_finished_by_another_worker_exactly_once() {
    for d in dialects() {
        let t = fresh(d).await;
        let q = Queue::new(
            t.db.clone(),
            std::sync::Arc::new(SystemClock),
            EventBus::default(),
            Backoff::default(),
        );
        let id = q
            .enqueue(NewJob::new(
                "system.sleep",
                serde_json::json!({ "ms": 2500 }),
            ))
            .await
            .unwrap()
            .id;
        let mut a = spawn_worker(&t.url, &[]);
        let running = wait_until(&q, id, "running", Duration::from_secs(30), |j| {
            j.status == JobStatus::Running
        })
        .await;
        let worker_a = running.worker_id.clone().unwrap();
        assert!(worker_a.contains(&format!("-{}-", a.id())), "{worker_a}");
        a.kill().unwrap(); // SIGKILL
        a.wait().unwrap();
        let mut b = spawn_worker(&t.url, &[]);
        let done = wait_until(&q, id, "succeeded", Duration::from_secs(30), |j| {
            j.status.is_terminal()
        })
        .await;
        b.kill().unwrap();
        b.wait().unwrap();
        assert_eq!(done.status, JobStatus::Succeeded, "{d}: {done:?}");
        assert_eq!(
            done.attempts, 2,
            "{d}: one killed attempt, one that finished"
        );
        let worker_b = done.worker_id.unwrap();
        assert!(
            worker_b.contains(&format!("-{}-", b.id())),
            "{d}: finished by {worker_b}"
        );
        assert_eq!(
            done.result.unwrap()["worker"],
            serde_json::json!(worker_b),
            "{d}: the result is the second worker's"
        );
    }
}

#[tokio::test]
async fn sigterm_commits_finished_jobs_and_releases_the_rest() {
    for d in dialects() {
        let t = fresh(d).await;
        let q = Queue::new(
            t.db.clone(),
            std::sync::Arc::new(SystemClock),
            EventBus::default(),
            Backoff::default(),
        );
        let mut short = Vec::new();
        let mut long = Vec::new();
        for _ in 0..3 {
            short.push(
                q.enqueue(NewJob::new(
                    "system.sleep",
                    serde_json::json!({ "ms": 1200 }),
                ))
                .await
                .unwrap()
                .id,
            );
        }
        for _ in 0..2 {
            long.push(
                q.enqueue(NewJob::new(
                    "system.sleep",
                    serde_json::json!({ "ms": 60000 }),
                ))
                .await
                .unwrap()
                .id,
            );
        }
        let mut w = spawn_worker(
            &t.url,
            &[
                ("OMNI__WORKERS__GRACE_MS", "4000"),
                ("OMNI__WORKERS__LEASE_MS", "20000"),
                ("OMNI__WORKERS__HEARTBEAT_MS", "1000"),
            ],
        );
        for id in short.iter().chain(&long) {
            wait_until(&q, *id, "running", Duration::from_secs(30), |j| {
                j.status == JobStatus::Running
            })
            .await;
        }
        unsafe {
            libc::kill(w.id() as i32, libc::SIGTERM);
        }
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(s) = w.try_wait().unwrap() {
                break s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "worker did not exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(status.success(), "{d}: exit status {status:?}");
        for id in &short {
            let j = q.get(*id).await.unwrap().unwrap();
            assert_eq!(
                j.status,
                JobStatus::Succeeded,
                "{d}: a finished job must be committed: {j:?}"
            );
        }
        for id in &long {
            let j = q.get(*id).await.unwrap().unwrap();
            assert_eq!(
                j.status,
                JobStatus::Queued,
                "{d}: an unfinished job must be released: {j:?}"
            );
            assert_eq!(j.attempts, 0, "{d}: a released attempt does not count");
            assert!(j.lease_until.is_none());
        }
        let running = q
            .list(&omni::engine::queue::JobFilter {
                status: Some(JobStatus::Running),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(running.is_empty(), "{d}: nothing may be left running");
    }
}
