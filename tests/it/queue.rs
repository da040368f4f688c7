//! The durable queue, its worker pool and the scheduler, on every dialect.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use omni::engine::clock::{ManualClock, SharedClock, SystemClock};
use omni::engine::events::EventBus;
use omni::engine::queue::{Backoff, JobError, JobFilter, JobStatus, KindFilter, NewJob, Queue};
use omni::engine::scheduler::{Schedule, Scheduler};
use omni::engine::worker::{JobCtx, Registry, WorkerConfig, WorkerPool};
use tokio::sync::watch;

use crate::common::{dialects, fresh};

const T0: i64 = 1_800_000_000_000; // a fixed instant, 2027-01-15

fn queue_on(db: &omni::db::Db, clock: SharedClock) -> Queue {
    Queue::new(
        db.clone(),
        clock,
        EventBus::default(),
        Backoff {
            base_ms: 10,
            max_ms: 50,
            jitter: 0.0,
        },
    )
}

fn only(kind: &str) -> KindFilter {
    KindFilter::Only(vec![kind.to_string()])
}

fn fast_pool_config() -> WorkerConfig {
    WorkerConfig {
        concurrency: 8,
        lease_ms: 2_000,
        heartbeat_ms: 200,
        poll_ms: 20,
        rescue_ms: 100,
        grace_ms: 2_000,
        ..Default::default()
    }
}

#[tokio::test]
async fn enqueue_claim_complete() {
    for d in dialects() {
        let t = fresh(d).await;
        let q = queue_on(&t.db, Arc::new(SystemClock));
        let e = q
            .enqueue(NewJob::new("k", serde_json::json!({"x": 1})))
            .await
            .unwrap();
        assert!(e.created);
        let claimed = q
            .claim(&only("k"), 10, "w1", Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "{d}");
        let (job, lease) = &claimed[0];
        assert_eq!(job.status, JobStatus::Running);
        assert_eq!(job.attempts, 1);
        assert_eq!(job.payload["x"], 1);
        assert!(
            q.claim(&only("k"), 10, "w2", Duration::from_secs(30))
                .await
                .unwrap()
                .is_empty(),
            "{d}: claimed twice"
        );
        assert!(q
            .complete(job, *lease, Some(&serde_json::json!({"ok": true})))
            .await
            .unwrap());
        let done = q.get(e.id).await.unwrap().unwrap();
        assert_eq!(done.status, JobStatus::Succeeded, "{d}");
        assert_eq!(done.result.unwrap()["ok"], true);
    }
}

#[tokio::test]
async fn concurrent_enqueuers_of_one_unique_key_make_one_job() {
    for d in dialects() {
        let t = fresh(d).await;
        let q = queue_on(&t.db, Arc::new(SystemClock));
        let mut handles = Vec::new();
        for _ in 0..8 {
            let q = q.clone();
            handles.push(tokio::spawn(async move {
                q.enqueue(
                    NewJob::new("scrape.profile", serde_json::json!({})).unique("sandbox:alice"),
                )
                .await
                .unwrap()
            }));
        }
        let mut ids = Vec::new();
        let mut created = 0;
        for h in handles {
            let e = h.await.unwrap();
            ids.push(e.id);
            created += e.created as usize;
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{d}: every enqueuer must see the same job");
        assert_eq!(created, 1, "{d}");
        let all = q
            .list(&JobFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 1, "{d}");
    }
}

#[tokio::test]
async fn finished_unique_job_releases_its_key_but_cron_keys_stay() {
    for d in dialects() {
        let t = fresh(d).await;
        let q = queue_on(&t.db, Arc::new(SystemClock));
        q.enqueue(NewJob::new("k", serde_json::json!({})).unique("u"))
            .await
            .unwrap();
        q.enqueue(NewJob::new("k", serde_json::json!({})).unique_forever("schedule:x:1"))
            .await
            .unwrap();
        for (job, lease) in q
            .claim(&only("k"), 10, "w", Duration::from_secs(30))
            .await
            .unwrap()
        {
            q.complete(&job, lease, None).await.unwrap();
        }
        assert!(
            q.enqueue(NewJob::new("k", serde_json::json!({})).unique("u"))
                .await
                .unwrap()
                .created,
            "{d}"
        );
        assert!(
            !q.enqueue(NewJob::new("k", serde_json::json!({})).unique_forever("schedule:x:1"))
                .await
                .unwrap()
                .created,
            "{d}"
        );
    }
}

#[tokio::test]
async fn expired_lease_is_rescued_and_the_stale_worker_is_fenced_out() {
    for d in dialects() {
        let t = fresh(d).await;
        let clock = ManualClock::new(T0);
        let q = queue_on(&t.db, clock.clone());
        let id = q
            .enqueue(NewJob::new("k", serde_json::json!({})))
            .await
            .unwrap()
            .id;
        let (job_a, lease_a) = q
            .claim(&only("k"), 1, "a", Duration::from_secs(5))
            .await
            .unwrap()
            .remove(0);
        clock.advance(4_000);
        assert!(
            q.rescue_expired().await.unwrap().is_empty(),
            "{d}: rescued a live lease"
        );
        clock.advance(2_000);
        assert_eq!(q.rescue_expired().await.unwrap(), vec![id], "{d}");
        let (job_b, lease_b) = q
            .claim(&only("k"), 1, "b", Duration::from_secs(5))
            .await
            .unwrap()
            .remove(0);
        assert!(
            lease_b.token > lease_a.token,
            "{d}: fencing tokens must grow"
        );
        assert_eq!(job_b.attempts, 2);
        // The zombie wakes up: nothing it does counts.
        assert!(
            !q.heartbeat(lease_a, Duration::from_secs(5)).await.unwrap(),
            "{d}"
        );
        // A worker heartbeats all its leases at once: only the ones it still holds are extended.
        assert_eq!(
            q.heartbeat_many(&[lease_a, lease_b], Duration::from_secs(5))
                .await
                .unwrap(),
            vec![job_b.id],
            "{d}"
        );
        assert!(!q.complete(&job_a, lease_a, None).await.unwrap(), "{d}");
        assert_eq!(
            q.fail(&job_a, lease_a, &JobError::retry("late"))
                .await
                .unwrap(),
            None,
            "{d}"
        );
        assert_eq!(q.get(id).await.unwrap().unwrap().status, JobStatus::Running);
        assert!(q.complete(&job_b, lease_b, None).await.unwrap(), "{d}");
        let done = q.get(id).await.unwrap().unwrap();
        assert_eq!(done.status, JobStatus::Succeeded);
        assert_eq!(done.worker_id.as_deref(), Some("b"));
    }
}

#[tokio::test]
async fn lease_rescue_by_a_running_pool_completes_the_job() {
    for d in dialects() {
        let t = fresh(d).await;
        let q = queue_on(&t.db, Arc::new(SystemClock));
        let id = q
            .enqueue(NewJob::new("k", serde_json::json!({})))
            .await
            .unwrap()
            .id;
        // A worker claims with a short lease and dies silently.
        q.claim(&only("k"), 1, "dead-worker", Duration::from_millis(300))
            .await
            .unwrap();
        let mut reg: Registry<()> = Registry::new();
        reg.register("k", |_ctx: JobCtx<()>| async { Ok(None) });
        let (tx, rx) = watch::channel(false);
        let pool = WorkerPool::new(q.clone(), reg, (), fast_pool_config(), "rescuer".into());
        let h = tokio::spawn(pool.run(rx));
        let job = wait_status(&q, id, JobStatus::Succeeded, Duration::from_secs(10)).await;
        assert_eq!(job.worker_id.as_deref(), Some("rescuer"), "{d}");
        tx.send(true).unwrap();
        h.await.unwrap();
    }
}

async fn wait_status(
    q: &Queue,
    id: omni::engine::queue::JobId,
    want: JobStatus,
    within: Duration,
) -> omni::engine::queue::Job {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let job = q.get(id).await.unwrap().unwrap();
        if job.status == want {
            return job;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "job {id} is {} (wanted {want}) after {within:?}: {job:?}",
                job.status
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn poison_job_ends_dead_and_others_are_unaffected() {
    for d in dialects() {
        let t = fresh(d).await;
        let q = queue_on(&t.db, Arc::new(SystemClock));
        let poison = q
            .enqueue(NewJob::new("poison", serde_json::json!({})).max_attempts(3))
            .await
            .unwrap()
            .id;
        let mut good = Vec::new();
        for i in 0..10 {
            good.push(
                q.enqueue(NewJob::new("good", serde_json::json!({ "i": i })))
                    .await
                    .unwrap()
                    .id,
            );
        }
        let runs = Arc::new(AtomicUsize::new(0));
        let mut reg: Registry<Arc<AtomicUsize>> = Registry::new();
        reg.register("poison", |ctx: JobCtx<Arc<AtomicUsize>>| async move {
            ctx.ctx.fetch_add(1, Ordering::SeqCst);
            panic!("poisoned payload");
        });
        reg.register("good", |_ctx: JobCtx<Arc<AtomicUsize>>| async {
            Ok(Some(serde_json::json!("fine")))
        });
        let (tx, rx) = watch::channel(false);
        let pool = WorkerPool::new(q.clone(), reg, runs.clone(), fast_pool_config(), "w".into());
        let h = tokio::spawn(pool.run(rx));
        let dead = wait_status(&q, poison, JobStatus::Dead, Duration::from_secs(10)).await;
        for id in good {
            wait_status(&q, id, JobStatus::Succeeded, Duration::from_secs(10)).await;
        }
        tx.send(true).unwrap();
        h.await.unwrap();
        assert_eq!(dead.attempts, 3, "{d}");
        assert_eq!(runs.load(Ordering::SeqCst), 3, "{d}");
        assert!(dead.error.unwrap().contains("poisoned payload"), "{d}");
    }
}

#[tokio::test]
async fn permanent_error_goes_dead_at_once_and_snooze_does_not_count() {
    for d in dialects() {
        let t = fresh(d).await;
        let clock = ManualClock::new(T0);
        let q = queue_on(&t.db, clock.clone());
        let a = q
            .enqueue(NewJob::new("k", serde_json::json!({})))
            .await
            .unwrap()
            .id;
        let (job, lease) = q
            .claim(&only("k"), 1, "w", Duration::from_secs(5))
            .await
            .unwrap()
            .remove(0);
        q.fail(
            &job,
            lease,
            &JobError::Snooze {
                until: T0 + 60_000,
                reason: "hourly cap".into(),
            },
        )
        .await
        .unwrap();
        let j = q.get(a).await.unwrap().unwrap();
        assert_eq!(
            (j.status, j.attempts, j.run_at),
            (JobStatus::Queued, 0, T0 + 60_000),
            "{d}"
        );
        assert!(
            q.claim(&only("k"), 1, "w", Duration::from_secs(5))
                .await
                .unwrap()
                .is_empty(),
            "{d}: snoozed job ran early"
        );
        clock.advance(60_000);
        let (job, lease) = q
            .claim(&only("k"), 1, "w", Duration::from_secs(5))
            .await
            .unwrap()
            .remove(0);
        q.fail(&job, lease, &JobError::permanent("bad input"))
            .await
            .unwrap();
        let j = q.get(a).await.unwrap().unwrap();
        assert_eq!(
            (j.status, j.error.as_deref()),
            (JobStatus::Dead, Some("bad input")),
            "{d}"
        );
        // Dead jobs are kept and can be retried.
        assert!(q.retry(a).await.unwrap());
        assert_eq!(q.get(a).await.unwrap().unwrap().status, JobStatus::Queued);
        assert!(q.cancel(a).await.unwrap());
        assert!(!q.cancel(a).await.unwrap(), "{d}: cancelled twice");
    }
}

#[tokio::test]
async fn three_schedulers_fire_every_tick_exactly_once() {
    for d in dialects() {
        let t = fresh(d).await;
        let clock = ManualClock::new(T0);
        let q = queue_on(&t.db, clock.clone());
        let schedule =
            || vec![Schedule::new("feedback_sweep", "feedback.sweep", "*/10 * * * *").unwrap()];
        let mut schedulers: Vec<Scheduler> = (0..3)
            .map(|_| Scheduler::new(q.clone(), schedule()))
            .collect();
        // Six simulated hours, one minute at a time, all three racing on each step.
        for _ in 0..360 {
            let futs: Vec<_> = schedulers.iter_mut().map(|s| s.run_due()).collect();
            for r in futures::future::join_all(futs).await {
                r.unwrap();
            }
            clock.advance(60_000);
        }
        let last_run = T0 + 359 * 60_000;
        let sched = &schedule()[0];
        let mut expected = vec![sched.latest_at_or_before(T0, T0 - 86_400_000).unwrap()];
        let mut cursor = T0;
        while let Some(t) = sched.next_after(cursor).filter(|t| *t <= last_run) {
            expected.push(t);
            cursor = t;
        }
        let jobs = q
            .list(&JobFilter {
                kind: Some("feedback.sweep".into()),
                limit: 10_000,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut ticks: Vec<i64> = jobs
            .iter()
            .map(|j| j.payload["tick"].as_i64().unwrap())
            .collect();
        ticks.sort();
        assert_eq!(ticks, expected, "{d}: every tick exactly once");
        assert_eq!(
            ticks.len(),
            36,
            "{d}: T0 is on a tick, plus 35 more in 359 minutes"
        );
    }
}

#[tokio::test]
async fn scheduler_catches_up_only_the_latest_missed_tick() {
    for d in dialects() {
        let t = fresh(d).await;
        let clock = ManualClock::new(T0);
        let q = queue_on(&t.db, clock.clone());
        let mut s = Scheduler::new(
            q.clone(),
            vec![Schedule::new("feedback_sweep", "feedback.sweep", "*/10 * * * *").unwrap()],
        );
        s.run_due().await.unwrap();
        clock.advance(5 * 3_600_000); // five hours of downtime: thirty missed ticks
        let fired = s.run_due().await.unwrap();
        assert_eq!(fired.len(), 1, "{d}");
        let jobs = q
            .list(&JobFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(jobs.len(), 2, "{d}: one tick at start, one catch-up");
    }
}

#[tokio::test]
async fn enqueue_many_reports_every_job_in_order() {
    for d in dialects() {
        let t = fresh(d).await;
        let q = queue_on(&t.db, Arc::new(SystemClock));
        let existing = q
            .enqueue(NewJob::new("k", serde_json::json!({"i": -1})).unique("u:b"))
            .await
            .unwrap();
        // Runs of keyless jobs (one longer than a statement's chunk) between keyed ones, a key
        // repeated inside the batch and a key already taken.
        let mut batch: Vec<NewJob> = (0..2_500)
            .map(|i| NewJob::new("k", serde_json::json!({ "i": i })))
            .collect();
        batch.insert(
            3,
            NewJob::new("k", serde_json::json!({"i": "a1"})).unique("u:a"),
        );
        batch.insert(
            7,
            NewJob::new("k", serde_json::json!({"i": "a2"})).unique("u:a"),
        );
        batch.insert(
            8,
            NewJob::new("k", serde_json::json!({"i": "b"})).unique("u:b"),
        );
        let out = q.enqueue_many(&batch).await.unwrap();
        assert_eq!(out.len(), batch.len(), "{d}");
        assert!(out[3].created && !out[7].created && !out[8].created, "{d}");
        assert_eq!(
            out[7].id, out[3].id,
            "{d}: a repeated key names the first job"
        );
        assert_eq!(out[8].id, existing.id, "{d}");
        let created: Vec<_> = out.iter().filter(|e| e.created).map(|e| e.id).collect();
        assert!(
            created.windows(2).all(|w| w[0] < w[1]),
            "{d}: ids follow the batch order"
        );
        for (job, e) in batch.iter().zip(&out) {
            if e.created {
                let row = q.get(e.id).await.unwrap().unwrap();
                assert_eq!(
                    row.payload, job.payload,
                    "{d}: job {} got the wrong id",
                    e.id
                );
                assert_eq!(row.unique_key, job.unique_key, "{d}");
            }
        }
    }
}

#[tokio::test]
async fn complete_and_claim_fences_each_completion_and_refills_in_one_step() {
    for d in dialects() {
        let t = fresh(d).await;
        let clock = ManualClock::new(T0);
        let q = queue_on(&t.db, clock.clone());
        let batch: Vec<NewJob> = (0..4)
            .map(|i| NewJob::new("k", serde_json::json!({ "i": i })))
            .collect();
        let ids: Vec<_> = q
            .enqueue_many(&batch)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        let lease_for = Duration::from_secs(5);
        let first = q.claim(&only("k"), 2, "w", lease_for).await.unwrap();
        let (a, lease_a) = &first[0];
        let (b, lease_b) = &first[1];
        assert_eq!((a.id, b.id), (ids[0], ids[1]), "{d}");
        // b's lease is lost while it runs: an operator cancels it.
        assert!(q.cancel(b.id).await.unwrap());
        let result = serde_json::json!({"ok": 1});
        let (held, next) = q
            .complete_and_claim(
                &[(a, *lease_a, Some(&result)), (b, *lease_b, None)],
                &only("k"),
                5,
                "w",
                lease_for,
            )
            .await
            .unwrap();
        assert_eq!(held, vec![true, false], "{d}");
        assert_eq!(
            next.iter().map(|(j, _)| j.id).collect::<Vec<_>>(),
            ids[2..],
            "{d}"
        );
        assert!(next
            .iter()
            .all(|(j, l)| j.status == JobStatus::Running && l.token > lease_b.token));
        let a_row = q.get(a.id).await.unwrap().unwrap();
        assert_eq!(a_row.status, JobStatus::Succeeded, "{d}");
        assert_eq!(a_row.result, Some(result.clone()), "{d}");
        assert_eq!(
            q.get(b.id).await.unwrap().unwrap().status,
            JobStatus::Cancelled,
            "{d}: a lost lease completes nothing"
        );

        // A stale worker's completion inside the combined step changes nothing either.
        clock.advance(6_000);
        assert_eq!(q.rescue_expired().await.unwrap().len(), 2, "{d}");
        let (c, lease_c) = q
            .claim(&only("k"), 1, "w2", lease_for)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(c.id, ids[2], "{d}");
        let (stale_job, stale_lease) = &next[0];
        let (held, last) = q
            .complete_and_claim(
                &[(stale_job, *stale_lease, None)],
                &only("k"),
                5,
                "w",
                lease_for,
            )
            .await
            .unwrap();
        assert_eq!(held, vec![false], "{d}");
        assert_eq!(last.len(), 1, "{d}");
        assert_eq!(last[0].0.id, ids[3], "{d}");
        assert_eq!(
            q.get(c.id).await.unwrap().unwrap().status,
            JobStatus::Running,
            "{d}: the stale completion touched the live lease"
        );
        // Nothing left to claim: the completions still commit.
        let (held, none) = q
            .complete_and_claim(
                &[(&c, lease_c, None), (&last[0].0, last[0].1, None)],
                &only("k"),
                5,
                "w2",
                lease_for,
            )
            .await
            .unwrap();
        assert_eq!(held, vec![true, true], "{d}");
        assert!(none.is_empty(), "{d}");
        for id in &ids[2..] {
            assert_eq!(
                q.get(*id).await.unwrap().unwrap().status,
                JobStatus::Succeeded,
                "{d}"
            );
        }
    }
}
