//! Property test: random sequences of enqueue / claim / heartbeat / complete / fail / expire / rescue /
//! cancel keep the queue equal to a reference model — one state per job, at most one valid lease.

use std::time::Duration;

use omni::engine::clock::{Clock, ManualClock};
use omni::engine::events::EventBus;
use omni::engine::queue::{Backoff, Job, JobError, JobStatus, KindFilter, Lease, NewJob, Queue};
use proptest::prelude::*;

use crate::common::{dialects, fresh};

const LEASE_MS: i64 = 1_000;
const BACKOFF: Backoff = Backoff {
    base_ms: 100,
    max_ms: 400,
    jitter: 0.0,
};

#[derive(Debug, Clone)]
enum Op {
    Enqueue { priority: i64, max_attempts: i64 },
    Claim(i64),
    Heartbeat(usize),
    Complete(usize),
    Fail(usize),
    Advance(i64),
    Rescue,
    Cancel(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0i64..3, 1i64..4).prop_map(|(priority, max_attempts)| Op::Enqueue { priority, max_attempts }),
        3 => (1i64..4).prop_map(Op::Claim),
        2 => any::<usize>().prop_map(Op::Heartbeat),
        2 => any::<usize>().prop_map(Op::Complete),
        2 => any::<usize>().prop_map(Op::Fail),
        2 => prop_oneof![Just(50i64), Just(400), Just(1_500)].prop_map(Op::Advance),
        1 => Just(Op::Rescue),
        1 => any::<usize>().prop_map(Op::Cancel),
    ]
}

#[derive(Debug, Clone)]
struct ModelJob {
    status: JobStatus,
    priority: i64,
    run_at: i64,
    attempts: i64,
    max_attempts: i64,
    token: Option<i64>,
    lease_until: Option<i64>,
}

struct Model {
    jobs: Vec<(i64, ModelJob)>,
}

impl Model {
    fn holds(&self, lease: &Lease, now: i64) -> bool {
        let _ = now;
        self.jobs.iter().any(|(id, j)| {
            *id == lease.job_id.0 && j.status == JobStatus::Running && j.token == Some(lease.token)
        })
    }
    fn get(&mut self, id: i64) -> &mut ModelJob {
        &mut self
            .jobs
            .iter_mut()
            .find(|(i, _)| *i == id)
            .expect("model knows every job")
            .1
    }
}

async fn run_case(q: &Queue, clock: &ManualClock, ops: &[Op]) -> Result<(), TestCaseError> {
    sqlx::query("DELETE FROM jobs")
        .execute(q.db().writer())
        .await
        .unwrap();
    let mut model = Model { jobs: Vec::new() };
    let mut leases: Vec<(Job, Lease)> = Vec::new();
    let kinds = KindFilter::Only(vec!["k".into()]);
    for op in ops {
        let now = clock.now_ms();
        match op {
            Op::Enqueue {
                priority,
                max_attempts,
            } => {
                let e = q
                    .enqueue(
                        NewJob::new("k", serde_json::json!({}))
                            .priority(*priority)
                            .max_attempts(*max_attempts),
                    )
                    .await
                    .unwrap();
                model.jobs.push((
                    e.id.0,
                    ModelJob {
                        status: JobStatus::Queued,
                        priority: *priority,
                        run_at: now,
                        attempts: 0,
                        max_attempts: *max_attempts,
                        token: None,
                        lease_until: None,
                    },
                ));
            }
            Op::Claim(n) => {
                let mut ready: Vec<&(i64, ModelJob)> = model
                    .jobs
                    .iter()
                    .filter(|(_, j)| {
                        matches!(j.status, JobStatus::Queued | JobStatus::Failed) && j.run_at <= now
                    })
                    .collect();
                ready.sort_by(|a, b| {
                    b.1.priority
                        .cmp(&a.1.priority)
                        .then(a.1.run_at.cmp(&b.1.run_at))
                        .then(a.0.cmp(&b.0))
                });
                let mut expected: Vec<i64> =
                    ready.iter().take(*n as usize).map(|(id, _)| *id).collect();
                let claimed = q
                    .claim(&kinds, *n, "w", Duration::from_millis(LEASE_MS as u64))
                    .await
                    .unwrap();
                let mut got: Vec<i64> = claimed.iter().map(|(j, _)| j.id.0).collect();
                expected.sort();
                got.sort();
                prop_assert_eq!(&got, &expected, "claim({}) took the wrong jobs", n);
                for (job, lease) in claimed {
                    let m = model.get(job.id.0);
                    prop_assert!(
                        m.token.is_none_or(|t| lease.token > t),
                        "fencing token did not grow"
                    );
                    m.status = JobStatus::Running;
                    m.attempts += 1;
                    m.token = Some(lease.token);
                    m.lease_until = Some(now + LEASE_MS);
                    leases.push((job, lease));
                }
            }
            Op::Heartbeat(i) | Op::Complete(i) | Op::Fail(i) if !leases.is_empty() => {
                let (job, lease) = leases[i % leases.len()].clone();
                let valid = model.holds(&lease, now);
                let m = model.get(job.id.0);
                match op {
                    Op::Heartbeat(_) => {
                        // The worker's batched form, with a lease no job has beside the real one.
                        let stranger = omni::engine::queue::Lease {
                            job_id: omni::engine::queue::JobId(-7),
                            token: lease.token,
                        };
                        let held = q
                            .heartbeat_many(
                                &[stranger, lease],
                                Duration::from_millis(LEASE_MS as u64),
                            )
                            .await
                            .unwrap();
                        let ok = held == vec![job.id];
                        prop_assert!(held.len() <= 1, "heartbeat extended {:?}", held);
                        prop_assert_eq!(ok, valid, "heartbeat validity");
                        if valid {
                            m.lease_until = Some(now + LEASE_MS);
                        }
                    }
                    Op::Complete(_) => {
                        let ok = q.complete(&job, lease, None).await.unwrap();
                        prop_assert_eq!(ok, valid, "complete validity");
                        if valid {
                            m.status = JobStatus::Succeeded;
                            m.lease_until = None;
                        }
                    }
                    _ => {
                        // The worker's view of attempts is the claim-time one, which is current
                        // whenever its lease is valid.
                        let got = q.fail(&job, lease, &JobError::retry("boom")).await.unwrap();
                        if valid {
                            let dead = m.attempts >= m.max_attempts;
                            m.status = if dead {
                                JobStatus::Dead
                            } else {
                                JobStatus::Failed
                            };
                            m.run_at = if dead {
                                now
                            } else {
                                now + BACKOFF.delay_ms(m.attempts)
                            };
                            m.lease_until = None;
                            prop_assert_eq!(got, Some(m.status));
                        } else {
                            prop_assert_eq!(got, None, "a stale lease failed a job");
                        }
                    }
                }
            }
            Op::Heartbeat(_) | Op::Complete(_) | Op::Fail(_) => {}
            Op::Advance(ms) => clock.advance(*ms),
            Op::Rescue => {
                let mut rescued: Vec<i64> = q
                    .rescue_expired()
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|id| id.0)
                    .collect();
                rescued.sort();
                let mut expected = Vec::new();
                for (id, m) in model.jobs.iter_mut() {
                    if m.status == JobStatus::Running && m.lease_until.is_some_and(|u| u < now) {
                        expected.push(*id);
                        m.status = if m.attempts >= m.max_attempts {
                            JobStatus::Dead
                        } else {
                            JobStatus::Failed
                        };
                        m.run_at = now;
                        m.lease_until = None;
                    }
                }
                expected.sort();
                prop_assert_eq!(rescued, expected, "rescue");
            }
            Op::Cancel(i) if !model.jobs.is_empty() => {
                let n = model.jobs.len();
                let (id, m) = &mut model.jobs[i % n];
                let ok = q.cancel(omni::engine::queue::JobId(*id)).await.unwrap();
                let cancellable = matches!(
                    m.status,
                    JobStatus::Queued | JobStatus::Failed | JobStatus::Running
                );
                prop_assert_eq!(ok, cancellable, "cancel");
                if cancellable {
                    m.status = JobStatus::Cancelled;
                    m.lease_until = None;
                }
            }
            Op::Cancel(_) => {}
        }
        // Invariant: the database agrees with the model on every job's state.
        for (id, m) in &model.jobs {
            let j = q
                .get(omni::engine::queue::JobId(*id))
                .await
                .unwrap()
                .unwrap();
            prop_assert_eq!(j.status, m.status, "job {} after {:?}", id, op);
            prop_assert_eq!(j.attempts, m.attempts, "attempts of job {}", id);
        }
        // Invariant: at most one lease per job is valid.
        for (id, _) in &model.jobs {
            let valid = leases
                .iter()
                .filter(|(_, l)| l.job_id.0 == *id && model.holds(l, now))
                .count();
            prop_assert!(valid <= 1, "job {} has {} valid leases", id, valid);
        }
    }
    Ok(())
}

#[test]
fn random_job_lifecycles_match_the_model() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for d in dialects() {
        let t = rt.block_on(fresh(d));
        let clock = ManualClock::new(1_800_000_000_000);
        let q = Queue::new(t.db.clone(), clock.clone(), EventBus::default(), BACKOFF);
        let cases = if d == "sqlite" { 48 } else { 24 };
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases,
            ..ProptestConfig::default()
        });
        runner
            .run(&prop::collection::vec(op(), 1..40), |ops| {
                rt.block_on(run_case(&q, &clock, &ops))
            })
            .unwrap_or_else(|e| panic!("{d}: {e}"));
    }
}
