//! Diagnostic job kinds: `system.noop` (does nothing; measures the queue) and `system.sleep`
//! (works for `ms` milliseconds with progress; checks a deployment's workers end to end).

use std::time::Duration;

use serde::Deserialize;

use crate::engine::service::Ctx;
use crate::engine::worker::{JobCtx, JobResult, Registry};

#[derive(Deserialize)]
struct Sleep {
    ms: u64,
    #[serde(default)]
    panic: bool,
}

/// Registers the diagnostic kinds.
pub fn register(registry: &mut Registry<Ctx>) {
    registry.register("system.noop", |_ctx: JobCtx<Ctx>| async { Ok(None) });
    registry.register("system.sleep", |ctx: JobCtx<Ctx>| async move {
        let p: Sleep = ctx.payload()?;
        if p.panic {
            panic!("system.sleep asked to panic");
        }
        let steps = 10u64;
        for i in 1..=steps {
            tokio::time::sleep(Duration::from_millis(p.ms / steps)).await;
            ctx.progress(
                (i * 100 / steps) as i64,
                &format!("slept {} of {} ms", p.ms * i / steps, p.ms),
            )
            .await;
        }
        let result: JobResult = Ok(Some(
            serde_json::json!({ "slept_ms": p.ms, "worker": ctx.job.worker_id }),
        ));
        result
    });
}
