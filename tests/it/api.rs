//! The HTTP API over real loopback HTTP, against an engine on a fresh database of every dialect.

use std::time::Duration;

use omni::api::{ApiOptions, ServeError, Server};
use omni::config::{ApiConfig, Config, Sources};
use omni::db::{bind_all, Db, SqlValue};
use omni::engine::queue::{JobError, JobId, KindFilter, NewJob};
use omni::engine::{Engine, Mode};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::common::{dialects, fresh, TestDb};

/// A running API on 127.0.0.1:0 over a client-mode engine (no workers: jobs stay where tests put them).
struct Api {
    base: String,
    engine: Engine,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), ServeError>>>,
    t: TestDb,
}

impl Api {
    async fn start(dialect: &str) -> Api {
        Self::start_with(dialect, None).await
    }

    async fn start_with(dialect: &str, token_env: Option<String>) -> Api {
        let t = fresh(dialect).await;
        let config = Config::load(&Sources {
            overrides: vec![("database.url".into(), t.url.clone())],
            ..Default::default()
        })
        .expect("config");
        let engine = Engine::start(config, Mode::Client).await.expect("engine");
        let api = ApiConfig {
            bind: "127.0.0.1:0".into(),
            token_env,
        };
        let server = Server::bind_with(engine.clone(), &api, ApiOptions::default())
            .await
            .expect("bind");
        let base = format!("http://{}", server.local_addr());
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Api {
            base,
            engine,
            http,
            stop: Some(tx),
            server: Some(handle),
            t,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.http.get(self.url(path)).send().await.expect("GET");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str) -> (StatusCode, Value) {
        let r = self.http.post(self.url(path)).send().await.expect("POST");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let r = self
            .http
            .request(method, self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Stops the server (as on SIGTERM) and waits for it.
    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .expect("server stops within 10 s")
                .expect("server task")
                .expect("server result");
        }
        self.engine.shutdown().await;
    }
}

fn assert_error(
    status: StatusCode,
    body: &Value,
    want: StatusCode,
    code: &str,
    field: Option<&str>,
) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    if let Some(f) = field {
        assert_eq!(body["error"]["field"], f, "{body}");
    }
}

async fn make_dead(engine: &Engine, kind: &str) -> JobId {
    let id = engine
        .enqueue(NewJob::new(kind, json!({ "ms": 10 })).max_attempts(1))
        .await
        .unwrap()
        .id;
    let claimed = engine
        .queue()
        .claim(
            &KindFilter::Only(vec![kind.to_string()]),
            1,
            "test-worker",
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let (job, lease) = &claimed[0];
    engine
        .queue()
        .fail(job, *lease, &JobError::permanent("boom"))
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn job_endpoints_list_show_retry_and_cancel() {
    for d in dialects() {
        let api = Api::start(d).await;
        let sleeping = api
            .engine
            .enqueue(NewJob::new("system.sleep", json!({ "ms": 1000 })))
            .await
            .unwrap()
            .id;
        let dead = make_dead(&api.engine, "test.poison").await;

        let (s, list) = api.get("/jobs").await;
        assert_eq!(s, StatusCode::OK, "{d}: {list}");
        let ids: Vec<i64> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, vec![dead.0, sleeping.0], "{d}: newest first");

        let (_, only_dead) = api.get("/jobs?status=dead&kind=test.poison&limit=10").await;
        assert_eq!(only_dead["items"].as_array().unwrap().len(), 1, "{d}");
        assert_eq!(only_dead["items"][0]["error"], "boom", "{d}");

        let (s, job) = api.get(&format!("/jobs/{sleeping}")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(job["kind"], "system.sleep");
        assert_eq!(job["status"], "queued");
        assert_eq!(job["payload"]["ms"], 1000);

        let (s, retried) = api.post(&format!("/jobs/{dead}/retry")).await;
        assert_eq!(s, StatusCode::OK, "{d}: {retried}");
        assert_eq!(retried["status"], "queued");
        assert_eq!(retried["attempts"], 0);
        let (s, body) = api.post(&format!("/jobs/{dead}/retry")).await;
        assert_error(s, &body, StatusCode::CONFLICT, "conflict", None);

        let (s, cancelled) = api.post(&format!("/jobs/{sleeping}/cancel")).await;
        assert_eq!(s, StatusCode::OK, "{d}: {cancelled}");
        assert_eq!(cancelled["status"], "cancelled");
        let (s, body) = api.post(&format!("/jobs/{sleeping}/cancel")).await;
        assert_error(s, &body, StatusCode::CONFLICT, "conflict", None);

        let (s, body) = api.get("/jobs/987654").await;
        assert_error(s, &body, StatusCode::NOT_FOUND, "not_found", None);
        let (s, body) = api.get("/jobs/abc").await;
        assert_error(s, &body, StatusCode::BAD_REQUEST, "bad_request", Some("id"));
        let (s, body) = api.get("/jobs?limit=501").await;
        assert_error(
            s,
            &body,
            StatusCode::BAD_REQUEST,
            "bad_request",
            Some("limit"),
        );
        let (s, body) = api.get("/jobs?status=sleeping").await;
        assert_error(
            s,
            &body,
            StatusCode::BAD_REQUEST,
            "bad_request",
            Some("status"),
        );
        let (s, body) = api.get("/no/such/route").await;
        assert_error(s, &body, StatusCode::NOT_FOUND, "not_found", None);
        let (s, body) = api.send_json(reqwest::Method::DELETE, "/jobs", "{}").await;
        assert_error(
            s,
            &body,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            None,
        );
        api.stop().await;
    }
}

#[tokio::test]
async fn a_configured_token_is_required_except_for_healthz() {
    let var = format!("OMNI_API_TEST_TOKEN_{}", rand::random::<u32>());
    // Unique name: no other test reads this variable.
    std::env::set_var(&var, "correct horse battery staple");
    for d in dialects() {
        let api = Api::start_with(d, Some(var.clone())).await;
        let r = api.http.get(api.url("/jobs")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{d}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");

        let r = api
            .http
            .get(api.url("/jobs"))
            .bearer_auth("correct horse battery")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "{d}: a prefix of the token is not the token"
        );
        let r = api
            .http
            .get(api.url("/metrics"))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{d}");

        let r = api
            .http
            .get(api.url("/jobs"))
            .bearer_auth("correct horse battery staple")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{d}");
        let r = api.http.get(api.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{d}: /healthz needs no token");
        api.stop().await;
    }
}

#[tokio::test]
async fn serve_refuses_a_public_bind_without_a_token() {
    let t = fresh("sqlite").await;
    let config = Config::load(&Sources {
        overrides: vec![("database.url".into(), t.url.clone())],
        ..Default::default()
    })
    .unwrap();
    let engine = Engine::start(config, Mode::Client).await.unwrap();
    let public = ApiConfig {
        bind: "0.0.0.0:0".into(),
        token_env: None,
    };
    let err = omni::api::serve(engine.clone(), &public, async {})
        .await
        .unwrap_err();
    assert!(matches!(err, ServeError::InsecureBind { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("api.token_env") && msg.contains("0.0.0.0:0"),
        "{msg}"
    );

    let unset = ApiConfig {
        bind: "0.0.0.0:0".into(),
        token_env: Some("OMNI_API_TEST_UNSET_TOKEN_VAR".into()),
    };
    let err = omni::api::serve(engine.clone(), &unset, async {})
        .await
        .unwrap_err();
    assert!(matches!(err, ServeError::TokenUnset { .. }), "{err}");
    assert!(
        err.to_string().contains("OMNI_API_TEST_UNSET_TOKEN_VAR"),
        "{err}"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn bad_bodies_are_422_naming_the_field_and_big_ones_413() {
    for d in dialects() {
        let api = Api::start(d).await;
        let patch = reqwest::Method::PATCH;
        let (s, body) = api
            .send_json(patch.clone(), "/campaigns/1", r#"{"status": "paused""#)
            .await;
        assert_error(s, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid", None);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("malformed JSON"),
            "{body}"
        );

        let (s, body) = api
            .send_json(
                patch.clone(),
                "/campaigns/1",
                r#"{"status": "paused", "colour": "red"}"#,
            )
            .await;
        assert_error(
            s,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Some("colour"),
        );

        let (s, body) = api
            .send_json(patch.clone(), "/campaigns/1", r#"{"status": 5}"#)
            .await;
        assert_error(
            s,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Some("status"),
        );

        let (s, body) = api
            .send_json(patch.clone(), "/campaigns/1", r#"{"status": "asleep"}"#)
            .await;
        assert_error(
            s,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Some("status"),
        );

        let (s, body) = api
            .send_json(
                reqwest::Method::POST,
                "/campaigns/1/batches",
                r#"{"size": "ten"}"#,
            )
            .await;
        assert_error(
            s,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Some("size"),
        );

        let (s, body) = api
            .send_json(reqwest::Method::POST, "/dnc", r#"{"platform": "mastodon"}"#)
            .await;
        assert_error(
            s,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Some("handle"),
        );

        let r = api
            .http
            .patch(api.url("/campaigns/1"))
            .body(r#"{"status":"paused"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{d}: JSON without a content type"
        );

        let r = api
            .http
            .post(api.url("/campaigns"))
            .header("content-type", "application/toml")
            .body("name = [unclosed")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{d}: broken TOML"
        );

        let huge = format!(
            r#"{{"platform": "mastodon", "handle": "{}"}}"#,
            "x".repeat(omni::api::DEFAULT_BODY_LIMIT + 10)
        );
        let (s, body) = api.send_json(reqwest::Method::POST, "/dnc", &huge).await;
        assert_error(
            s,
            &body,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            None,
        );
        api.stop().await;
    }
}

#[tokio::test]
async fn campaigns_are_created_from_toml_or_json_and_invalid_files_are_422_naming_the_field() {
    let api = Api::start("sqlite").await;
    let r = api
        .http
        .post(api.url("/campaigns"))
        .header("content-type", "application/toml")
        .body("name = \"vegan cooks\"\nplatform = \"sandbox\"\nbrief = \"Vegan home cooks.\"\n[filter]\nfollowers = { min = 10 }\n")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["name"], "vegan cooks");
    let r = api
        .http
        .post(api.url("/campaigns"))
        .header("content-type", "application/json")
        .body(r#"{"name": "x", "platform": "sandbox", "brief": "b", "filter": {"followers": {"min": 500, "max": 10}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["field"], "filter.followers", "{body}");
    // What the engine cannot do yet answers 501, never a 500.
    let (s, body) = api.post("/batches/1/approve").await;
    assert!(
        s == StatusCode::NOT_IMPLEMENTED || s == StatusCode::NOT_FOUND,
        "{s}: {body}"
    );
    api.stop().await;
}

/// Reads Server-Sent Events from a streaming response.
struct SseReader {
    response: reqwest::Response,
    buf: String,
}

#[derive(Debug, Clone, PartialEq)]
struct SseEvent {
    id: Option<u64>,
    name: String,
    data: Value,
}

impl SseReader {
    async fn open(api: &Api, last_event_id: Option<u64>) -> SseReader {
        let mut req = api
            .http
            .get(api.url("/events"))
            .timeout(Duration::from_secs(60));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let response = req.send().await.expect("GET /events");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        SseReader {
            response,
            buf: String::new(),
        }
    }

    /// The next event (comments and keep-alives skipped), or None after `within`.
    async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut name, mut data) = (None, String::from("message"), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Some(SseEvent {
                    id,
                    name,
                    data: serde_json::from_str(&data).expect("JSON data"),
                });
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .expect("stream")?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn enqueue_marked(engine: &Engine, n: u32) -> JobId {
    engine
        .enqueue(NewJob::new("system.noop", json!({ "n": n })))
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn events_stream_job_events_and_resume_after_last_event_id() {
    for d in dialects() {
        let api = Api::start(d).await;
        let mut sse = SseReader::open(&api, None).await;
        let mut seen = Vec::new();
        for n in 0..3 {
            let id = enqueue_marked(&api.engine, n).await;
            let ev = sse
                .next(Duration::from_secs(10))
                .await
                .expect("an event for the enqueued job");
            assert_eq!(ev.name, "job", "{d}");
            assert_eq!(ev.data["id"], id.0, "{d}");
            assert_eq!(ev.data["status"], "queued", "{d}");
            assert_eq!(ev.data["kind"], "system.noop", "{d}");
            seen.push(ev);
        }
        let ids: Vec<u64> = seen.iter().map(|e| e.id.unwrap()).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{d}: ids increase: {ids:?}"
        );
        drop(sse);

        // Missed while disconnected.
        let missed_a = enqueue_marked(&api.engine, 10).await;
        let missed_b = enqueue_marked(&api.engine, 11).await;
        // Give the pump a moment to number them before reconnecting (either order must work).
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut sse = SseReader::open(&api, Some(ids[1])).await;
        let replay: Vec<SseEvent> = vec![
            sse.next(Duration::from_secs(10)).await.unwrap(),
            sse.next(Duration::from_secs(10)).await.unwrap(),
            sse.next(Duration::from_secs(10)).await.unwrap(),
        ];
        let job_ids: Vec<i64> = replay
            .iter()
            .map(|e| e.data["id"].as_i64().unwrap())
            .collect();
        let seen_2 = seen[2].data["id"].as_i64().unwrap();
        assert_eq!(
            job_ids,
            vec![seen_2, missed_a.0, missed_b.0],
            "{d}: everything after Last-Event-ID, in order"
        );
        assert_eq!(replay[0].id, Some(ids[2]), "{d}: same ids on replay");

        let live = enqueue_marked(&api.engine, 12).await;
        let ev = sse.next(Duration::from_secs(10)).await.unwrap();
        assert_eq!(
            ev.data["id"], live.0,
            "{d}: then live events, no duplicates"
        );
        assert!(ev.id.unwrap() > replay[2].id.unwrap());
        assert_eq!(
            sse.next(Duration::from_millis(300)).await,
            None,
            "{d}: nothing else"
        );
        drop(sse);

        let r = api
            .http
            .get(api.url("/events"))
            .header("last-event-id", "yesterday")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        api.stop().await;
    }
}

#[tokio::test]
async fn shutdown_ends_open_event_streams_and_returns() {
    let api = Api::start("sqlite").await;
    let mut sse = SseReader::open(&api, None).await;
    let reader =
        tokio::spawn(async move { while sse.next(Duration::from_secs(30)).await.is_some() {} });
    // `stop` asserts that the server returns within 10 s although a stream is open.
    api.stop().await;
    tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the stream ended")
        .unwrap();
}

#[tokio::test]
async fn healthz_reports_database_and_queue_lag() {
    for d in dialects() {
        let api = Api::start(d).await;
        let (s, h) = api.get("/healthz").await;
        assert_eq!(s, StatusCode::OK, "{d}: {h}");
        assert_eq!(h["status"], "ok");
        assert_eq!(h["database"], "ok");
        assert_eq!(h["queue_lag_seconds"], 0.0);
        assert_eq!(h["ready_jobs"], 0);
        assert_eq!(h["node"], api.engine.node().id.as_str());

        let now = api.engine.services().clock.now_ms();
        api.engine
            .enqueue(NewJob::new("system.noop", json!({})).run_at(now - 5_000))
            .await
            .unwrap();
        api.engine
            .enqueue(NewJob::new("system.noop", json!({})).run_at(now + 600_000))
            .await
            .unwrap();
        let (_, h) = api.get("/healthz").await;
        let lag = h["queue_lag_seconds"].as_f64().unwrap();
        assert!((5.0..60.0).contains(&lag), "{d}: lag {lag}");
        assert_eq!(h["ready_jobs"], 1, "{d}: the future job is not ready");
        api.stop().await;
    }
}

async fn insert(db: &Db, sql: &str, args: Vec<SqlValue>) -> i64 {
    let row = bind_all(sqlx::query(sql), &args)
        .fetch_one(db.writer())
        .await
        .expect(sql);
    row.try_get::<i64, _>(0).expect("id")
}

/// A campaign with three leads (one fully detailed), an account, a batch with a sent message,
/// a reply and two do-not-contact entries.
struct Seed {
    campaign: i64,
    leads: Vec<i64>,
    batch: i64,
}

async fn seed(db: &Db, now: i64) -> Seed {
    use SqlValue::{Int, Text};
    // A real campaign spec (the engine parses it), with a predicate that matches nothing seeded.
    let spec = omni::engine::criteria::parse_campaign(
        "seed.toml",
        "name = \"vegan cooks\"\nplatform = \"mastodon\"\nbrief = \"Vegan home cooks.\"\n",
        &["mastodon"],
    )
    .expect("valid seed campaign");
    let campaign = insert(
        db,
        "INSERT INTO campaigns (name, platform, status, spec, compiled_where, compiled_params, criteria_hash, \
         created_at, updated_at) VALUES ($1, $2, 'active', $3, '1 = 1', '[]', 'h1', $4, $4) RETURNING id",
        vec![Text("vegan cooks".into()), Text("mastodon".into()), Text(serde_json::to_string(&spec).unwrap()), Int(now)],
    )
    .await;
    let mut leads = Vec::new();
    for (i, (handle, score)) in [("alice", 90), ("=bob", 75), ("carol", 75)]
        .iter()
        .enumerate()
    {
        let profile = insert(
            db,
            "INSERT INTO profiles_raw (platform, external_id, handle, payload, content_hash, first_seen, last_seen, \
             last_changed) VALUES ('mastodon', $1, $2, '{}', 'c', $3, $3, $3) RETURNING id",
            vec![Text(format!("ext{i}")), Text(handle.to_string()), Int(now)],
        )
        .await;
        let score_id = insert(
            db,
            "INSERT INTO llm_scores (profile_id, profile_hash, criteria_hash, campaign_id, model, score, qualified, \
             reasons, red_flags, opener, prompt_tokens, completion_tokens, latency_ms, created_at) \
             VALUES ($1, $2, 'h1', $3, 'judge-1', $4, 1, '[\"cooks\"]', '[]', 'Hi!', 100, 20, 500, $5) RETURNING id",
            vec![Int(profile), Text(format!("ph{i}")), Int(campaign), Int(*score), Int(now)],
        )
        .await;
        leads.push(
            insert(
                db,
                "INSERT INTO leads (campaign_id, profile_id, llm_score_id, score, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
                vec![
                    Int(campaign),
                    Int(profile),
                    Int(score_id),
                    Int(*score),
                    Text(if i == 0 { "sent" } else { "new" }.into()),
                    Int(now),
                ],
            )
            .await,
        );
        if i == 0 {
            insert(
                db,
                "INSERT INTO profile_features (profile_id, feature_version, followers, following, posts_count, \
                 engagement_rate, avg_likes, avg_comments, posts_per_week, last_post_at, account_age_days, language, \
                 is_bot, has_link, has_email, text, image_keys, updated_at) VALUES ($1, 1, 12000, 300, 800, 0.04, \
                 40.0, 3.0, 5.5, $2, 900, 'en', 0, 1, 0, 'vegan recipes', '[]', $2) RETURNING profile_id",
                vec![Int(profile), Int(now)],
            )
            .await;
        }
    }
    let account = insert(
        db,
        "INSERT INTO accounts (platform, handle, token_env, daily_cap, hourly_cap, min_gap_secs, jitter_secs, \
         timezone, created_at) VALUES ('mastodon', 'sender1', 'SENDER1_TOKEN', 50, 10, 60, 30, 'UTC', $1) RETURNING id",
        vec![Int(now)],
    )
    .await;
    let batch = insert(
        db,
        "INSERT INTO dm_batches (campaign_id, status, created_at, approved_at) VALUES ($1, 'dispatching', $2, $2) \
         RETURNING id",
        vec![Int(campaign), Int(now)],
    )
    .await;
    let message = insert(
        db,
        "INSERT INTO messages (lead_id, batch_id, account_id, body, status, idempotency_key, attempts, sent_at) \
         VALUES ($1, $2, $3, 'Hi alice', 'sent', 'k1', 1, $4) RETURNING id",
        vec![Int(leads[0]), Int(batch), Int(account), Int(now - 60_000)],
    )
    .await;
    insert(
        db,
        "INSERT INTO feedback_events (platform_event_id, message_id, lead_id, kind, body, occurred_at, ingested_at) \
         VALUES ('n1', $1, $2, 'replied', 'thanks!', $3, $3) RETURNING id",
        vec![Int(message), Int(leads[0]), Int(now)],
    )
    .await;
    for handle in ["spammer", "optout"] {
        insert(
            db,
            "INSERT INTO do_not_contact (platform, handle, reason, added_at) VALUES ('mastodon', $1, 'asked', $2) \
             RETURNING id",
            vec![Text(handle.into()), Int(now)],
        )
        .await;
    }
    Seed {
        campaign,
        leads,
        batch,
    }
}

#[tokio::test]
async fn read_endpoints_serve_campaigns_leads_batches_dnc_and_accounts() {
    for d in dialects() {
        let api = Api::start(d).await;
        let s = seed(&api.t.db, api.engine.services().clock.now_ms()).await;
        let c = s.campaign;

        let (st, list) = api.get("/campaigns?status=active").await;
        assert_eq!(st, StatusCode::OK, "{d}: {list}");
        assert_eq!(list["items"][0]["name"], "vegan cooks");
        assert_eq!(
            list["items"][0]["spec"]["name"], "vegan cooks",
            "{d}: spec is JSON, not a string"
        );
        let (_, none) = api.get("/campaigns?status=archived").await;
        assert_eq!(none["items"].as_array().unwrap().len(), 0);
        let (st, one) = api.get(&format!("/campaigns/{c}")).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(one["status"], "active");
        let (st, body) = api.get("/campaigns/999999").await;
        assert_error(st, &body, StatusCode::NOT_FOUND, "not_found", None);

        let (st, progress) = api.get(&format!("/campaigns/{c}/status")).await;
        assert_eq!(st, StatusCode::OK, "{d}: {progress}");
        assert_eq!(progress["llm_scored"], 3);
        assert_eq!(progress["leads"]["new"], 2);
        assert_eq!(progress["messages"]["sent"], 1);
        assert_eq!(progress["feedback"]["replied"], 1);

        // Pages of two, best first; ties broken by id.
        let (st, p1) = api.get(&format!("/campaigns/{c}/leads?limit=2")).await;
        assert_eq!(st, StatusCode::OK, "{d}: {p1}");
        let handles = |p: &Value| -> Vec<String> {
            p["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["handle"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(handles(&p1), vec!["alice", "carol"], "{d}");
        let cursor = p1["next_cursor"].as_str().expect("a next page").to_string();
        let (_, p2) = api
            .get(&format!("/campaigns/{c}/leads?limit=2&cursor={cursor}"))
            .await;
        assert_eq!(handles(&p2), vec!["=bob"], "{d}");
        assert!(p2["next_cursor"].is_null(), "{d}");
        let (_, new_only) = api.get(&format!("/campaigns/{c}/leads?status=new")).await;
        assert_eq!(handles(&new_only), vec!["carol", "=bob"], "{d}");
        let (st, body) = api.get(&format!("/campaigns/{c}/leads?limit=1000")).await;
        assert_error(
            st,
            &body,
            StatusCode::BAD_REQUEST,
            "bad_request",
            Some("limit"),
        );
        let (st, body) = api
            .get(&format!("/campaigns/{c}/leads?cursor=garbage"))
            .await;
        assert_error(
            st,
            &body,
            StatusCode::BAD_REQUEST,
            "bad_request",
            Some("cursor"),
        );
        let (st, body) = api.get("/campaigns/999999/leads").await;
        assert_error(st, &body, StatusCode::NOT_FOUND, "not_found", None);

        let r = api
            .http
            .get(api.url(&format!("/campaigns/{c}/leads")))
            .header("accept", "text/csv")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"));
        let csv = r.text().await.unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "id,campaign_id,profile_id,platform,handle,score,status,created_at,updated_at"
        );
        assert_eq!(lines.len(), 4, "{d}: {csv}");
        assert!(lines[1].contains(",alice,90,sent,"), "{csv}");
        assert!(
            lines[3].contains(",'=bob,75,new,"),
            "{d}: formula defused: {csv}"
        );

        let (st, lead) = api.get(&format!("/leads/{}", s.leads[0])).await;
        assert_eq!(st, StatusCode::OK, "{d}: {lead}");
        assert_eq!(lead["handle"], "alice");
        assert_eq!(lead["profile"]["followers"], 12000);
        assert_eq!(lead["profile"]["is_bot"], false);
        assert_eq!(lead["verdict"]["reasons"][0], "cooks");
        assert_eq!(lead["verdict"]["qualified"], true);
        assert_eq!(lead["messages"][0]["status"], "sent");
        assert_eq!(lead["feedback"][0]["kind"], "replied");
        let (_, bare) = api.get(&format!("/leads/{}", s.leads[1])).await;
        assert!(bare["profile"].is_null(), "{d}: no features yet");

        let (st, batch) = api.get(&format!("/batches/{}", s.batch)).await;
        assert_eq!(st, StatusCode::OK, "{d}: {batch}");
        assert_eq!(batch["status"], "dispatching");
        assert_eq!(batch["counts"]["sent"], 1);

        let (st, dnc) = api.get("/dnc?limit=1").await;
        assert_eq!(st, StatusCode::OK, "{d}: {dnc}");
        assert_eq!(dnc["items"][0]["handle"], "spammer");
        let next = dnc["next_cursor"].as_str().unwrap().to_string();
        let (_, dnc2) = api.get(&format!("/dnc?limit=1&cursor={next}")).await;
        assert_eq!(dnc2["items"][0]["handle"], "optout", "{d}");
        assert!(dnc2["next_cursor"].is_null());
        let (_, other) = api.get("/dnc?platform=bluesky").await;
        assert_eq!(other["items"].as_array().unwrap().len(), 0);

        let (st, accounts) = api.get("/accounts").await;
        assert_eq!(st, StatusCode::OK, "{d}: {accounts}");
        assert_eq!(accounts["items"][0]["handle"], "sender1");
        assert_eq!(accounts["items"][0]["sent_last_hour"], 1);
        assert_eq!(accounts["items"][0]["sent_last_day"], 1);
        assert!(accounts["items"][0].get("token_env").is_none(), "{d}");

        // The LLM and per-account numbers reach /metrics too.
        let metrics = api
            .http
            .get(api.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("omni_llm_calls_total{model=\"judge-1\"} 3"),
            "{d}: {metrics}"
        );
        assert!(
            metrics.contains("omni_llm_tokens_total{model=\"judge-1\",direction=\"prompt\"} 300"),
            "{metrics}"
        );
        assert!(
            metrics.contains(
                "omni_messages{platform=\"mastodon\",account=\"sender1\",status=\"sent\"} 1"
            ),
            "{metrics}"
        );
        api.stop().await;
    }
}

#[tokio::test]
async fn metrics_expose_jobs_queue_lag_and_request_durations() {
    for d in dialects() {
        let api = Api::start(d).await;
        let id = api
            .engine
            .enqueue(NewJob::new("system.sleep", json!({ "ms": 1 })))
            .await
            .unwrap()
            .id;
        make_dead(&api.engine, "scrape.profile").await;
        api.get(&format!("/jobs/{id}")).await;
        api.get("/jobs/424242").await;
        let r = api.http.get(api.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        let text = r.text().await.unwrap();
        for want in [
            "# TYPE omni_jobs gauge",
            "omni_jobs{kind=\"system.sleep\",status=\"queued\"} 1",
            "omni_jobs{kind=\"scrape.profile\",status=\"dead\"} 1",
            "omni_queue_ready_jobs 1",
            "omni_queue_lag_seconds ",
            "# TYPE omni_http_request_duration_seconds histogram",
            "omni_http_request_duration_seconds_count{route=\"/jobs/{id}\",method=\"GET\",status=\"200\"} 1",
            "omni_http_request_duration_seconds_count{route=\"/jobs/{id}\",method=\"GET\",status=\"404\"} 1",
            "omni_http_request_duration_seconds_bucket{route=\"/jobs/{id}\",method=\"GET\",status=\"200\",le=\"+Inf\"} 1",
        ] {
            assert!(text.contains(want), "{d}: missing `{want}` in\n{text}");
        }
        api.stop().await;
    }
}

#[tokio::test]
async fn openapi_json_lists_every_route() {
    let api = Api::start("sqlite").await;
    let (s, doc) = api.get("/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/healthz", "get"),
        ("/metrics", "get"),
        ("/events", "get"),
        ("/jobs", "get"),
        ("/jobs/{id}", "get"),
        ("/jobs/{id}/retry", "post"),
        ("/jobs/{id}/cancel", "post"),
        ("/campaigns", "post"),
        ("/campaigns", "get"),
        ("/campaigns/{id}", "get"),
        ("/campaigns/{id}", "patch"),
        ("/campaigns/{id}/status", "get"),
        ("/campaigns/{id}/explain", "get"),
        ("/campaigns/{id}/discover", "post"),
        ("/campaigns/{id}/qualify", "post"),
        ("/campaigns/{id}/leads", "get"),
        ("/campaigns/{id}/batches", "post"),
        ("/leads/{id}", "get"),
        ("/batches/{id}", "get"),
        ("/batches/{id}/approve", "post"),
        ("/batches/{id}/cancel", "post"),
        ("/dnc", "get"),
        ("/dnc", "post"),
        ("/dnc", "delete"),
        ("/people/{platform}/{handle}", "delete"),
        ("/accounts", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from /openapi.json"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["ErrorResponse"].is_object());
    api.stop().await;
}
