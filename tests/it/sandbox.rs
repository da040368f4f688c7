//! The simulated Mastodon platform over real HTTP: determinism, API shapes, pagination, faults,
//! direct messages and replies, media files and the simulated judge.

use std::collections::HashSet;
use std::time::Instant;

use omni::sandbox::{bind, Sandbox, SandboxHandle, SandboxOptions};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

/// 2026-01-01T12:00:00Z: a pinned start so responses do not depend on the day the tests run.
const START_MS: i64 = 1_767_268_800_000;
const TOKEN: &str = "test-sender-token";
const SENDER: &str = "omni_tester";

fn opts(seed: u64, profiles: usize) -> SandboxOptions {
    SandboxOptions {
        seed,
        profiles,
        senders: vec![(SENDER.to_string(), TOKEN.to_string())],
        start_ms: Some(START_MS),
        change_fraction: 0.0,
        ..SandboxOptions::default()
    }
}

async fn start(o: SandboxOptions) -> SandboxHandle {
    bind(o, "127.0.0.1:0".parse().expect("loopback address"))
        .await
        .expect("sandbox binds")
}

async fn get(c: &Client, url: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let r = c.get(url).send().await.expect("request");
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.text().await.expect("body"))
}

async fn get_json(c: &Client, url: &str) -> Value {
    let (status, _, body) = get(c, url).await;
    assert_eq!(status, StatusCode::OK, "GET {url} -> {body}");
    serde_json::from_str(&body).expect("json body")
}

fn link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get("link")
        .map(|v| v.to_str().expect("ascii link").to_string())
}

async fn handles(c: &Client, base: &str) -> Vec<String> {
    let v = get_json(c, &format!("{base}/_sandbox/handles")).await;
    v.as_array()
        .expect("array")
        .iter()
        .map(|h| h.as_str().expect("string").to_string())
        .collect()
}

async fn truth(c: &Client, base: &str, handle: &str) -> Value {
    get_json(c, &format!("{base}/_sandbox/truth/{handle}")).await
}

async fn account(c: &Client, base: &str, handle: &str) -> Value {
    get_json(c, &format!("{base}/api/v1/accounts/lookup?acct={handle}")).await
}

async fn post_dm(c: &Client, base: &str, text: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = c
        .post(format!("{base}/api/v1/statuses"))
        .bearer_auth(TOKEN)
        .json(&json!({"status": text, "visibility": "direct"}));
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await.expect("post")
}

#[tokio::test]
async fn same_seed_gives_byte_identical_responses_and_another_seed_differs() {
    let mk = |seed| SandboxOptions {
        base_url: Some("http://sandbox.test".into()),
        ..opts(seed, 200)
    };
    let (a, b, d) = (
        start(mk(42)).await,
        start(mk(42)).await,
        start(mk(43)).await,
    );
    let c = Client::new();
    let first = handles(&c, &format!("http://{}", a.addr())).await[0].clone();
    let id = account(&c, &format!("http://{}", a.addr()), &first).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let routes = [
        "/_sandbox/handles".to_string(),
        format!("/api/v1/accounts/{id}"),
        format!("/api/v1/accounts/{id}/statuses?limit=40"),
        format!("/api/v1/accounts/{id}/followers"),
        "/api/v1/directory?limit=80".to_string(),
        "/api/v2/search?type=accounts&q=food&limit=40".to_string(),
        "/api/v1/timelines/tag/food?limit=40".to_string(),
    ];
    for route in &routes {
        let (sa, _, ba) = get(&c, &format!("http://{}{route}", a.addr())).await;
        let (sb, _, bb) = get(&c, &format!("http://{}{route}", b.addr())).await;
        assert_eq!(sa, StatusCode::OK, "{route}");
        assert!(ba.len() > 2, "{route} returned an empty body");
        assert_eq!(sa, sb);
        assert_eq!(
            ba, bb,
            "{route} differs between two sandboxes with one seed"
        );
    }
    let (_, _, ha) = get(&c, &format!("http://{}/_sandbox/handles", a.addr())).await;
    let (_, _, hd) = get(&c, &format!("http://{}/_sandbox/handles", d.addr())).await;
    assert_ne!(ha, hd, "a different seed must give a different world");
    for h in [a, b, d] {
        h.shutdown().await.expect("shutdown");
    }
}

#[tokio::test]
async fn account_and_status_entities_have_the_mastodon_shape() {
    let sb = start(opts(1, 100)).await;
    let base = sb.base_url().to_string();
    let c = Client::new();
    let handle = handles(&c, &base).await[3].clone();
    let acc = account(&c, &base, &format!("@{handle}")).await;
    for key in [
        "id",
        "username",
        "acct",
        "display_name",
        "locked",
        "bot",
        "discoverable",
        "group",
        "created_at",
        "note",
        "url",
        "avatar",
        "avatar_static",
        "header",
        "header_static",
        "followers_count",
        "following_count",
        "statuses_count",
        "last_status_at",
        "emojis",
        "fields",
    ] {
        assert!(acc.get(key).is_some(), "account lacks {key}: {acc}");
    }
    assert_eq!(acc["username"], handle.as_str());
    assert!(acc["id"]
        .as_str()
        .expect("string id")
        .parse::<u64>()
        .is_ok());
    assert!(acc["note"].as_str().expect("note").starts_with("<p>"));
    let id = acc["id"].as_str().expect("id");
    let statuses = get_json(&c, &format!("{base}/api/v1/accounts/{id}/statuses?limit=1")).await;
    let s = &statuses[0];
    for key in [
        "id",
        "created_at",
        "in_reply_to_id",
        "in_reply_to_account_id",
        "sensitive",
        "spoiler_text",
        "visibility",
        "language",
        "uri",
        "url",
        "replies_count",
        "reblogs_count",
        "favourites_count",
        "content",
        "reblog",
        "account",
        "media_attachments",
        "mentions",
        "tags",
        "emojis",
        "card",
        "poll",
    ] {
        assert!(s.get(key).is_some(), "status lacks {key}: {s}");
    }
    assert!(!s["tags"].as_array().expect("tags").is_empty());
    assert_eq!(s["account"]["id"], acc["id"]);
    let single = get_json(
        &c,
        &format!("{base}/api/v1/statuses/{}", s["id"].as_str().expect("id")),
    )
    .await;
    assert_eq!(&single, s);
    sb.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn unknown_records_answer_404_json_and_bad_input_is_rejected_cleanly() {
    let sb = start(opts(1, 50)).await;
    let base = sb.base_url().to_string();
    let c = Client::new();
    for path in [
        "/api/v1/accounts/lookup?acct=nobody_here_at_all",
        "/api/v1/accounts/lookup",
        "/api/v1/accounts/12345",
        "/api/v1/accounts/not-a-number/statuses",
        "/api/v1/statuses/99999999999",
        "/api/v1/no/such/route",
        "/_sandbox/truth/nobody",
    ] {
        let (status, headers, body) = get(&c, &format!("{base}{path}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body, r#"{"error":"Record not found"}"#, "{path}");
        assert!(
            headers.contains_key("x-ratelimit-remaining"),
            "{path} lacks rate-limit headers"
        );
    }
    let handle = handles(&c, &base).await[0].clone();
    let id = account(&c, &base, &handle).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, _, body) = get(
        &c,
        &format!("{base}/api/v1/accounts/{id}/statuses?max_id=abc"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(serde_json::from_str::<Value>(&body).expect("json")["error"].is_string());
    let r = c
        .post(format!("{base}/_sandbox/advance"))
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    sb.shutdown().await.expect("shutdown");
}

#[test]
fn invalid_options_are_refused_with_a_reason() {
    assert!(opts(1, 10).validate().is_ok());
    let bad = [
        SandboxOptions {
            error_rate: 1.5,
            ..opts(1, 10)
        },
        SandboxOptions {
            change_fraction: -0.1,
            ..opts(1, 10)
        },
        SandboxOptions {
            rate_limit: Some(0),
            ..opts(1, 10)
        },
        SandboxOptions {
            reply_delay_secs: -1,
            ..opts(1, 10)
        },
        SandboxOptions {
            senders: vec![("a".into(), "t".into()), ("b".into(), "t".into())],
            ..opts(1, 10)
        },
        SandboxOptions {
            profiles: 5_000_000,
            ..opts(1, 10)
        },
    ];
    for o in bad {
        let err = o.validate().expect_err("invalid options");
        assert!(!err.to_string().is_empty());
    }
}

#[tokio::test]
async fn account_statuses_paginate_with_link_headers_like_mastodon() {
    let sb = start(opts(7, 100)).await;
    let base = sb.base_url().to_string();
    let c = Client::new();
    let mut target = None;
    for h in handles(&c, &base).await {
        let acc = account(&c, &base, &h).await;
        if acc["statuses_count"].as_u64().expect("count") >= 10 {
            target = Some(acc);
            break;
        }
    }
    let acc = target.expect("an account with at least 10 posts");
    let id = acc["id"].as_str().expect("id");
    let total = acc["statuses_count"].as_u64().expect("count") as usize;
    let path = format!("/api/v1/accounts/{id}/statuses");
    let mut url = format!("{base}{path}?limit=4");
    let mut seen: Vec<u64> = Vec::new();
    loop {
        let (status, headers, body) = get(&c, &url).await;
        assert_eq!(status, StatusCode::OK);
        let page: Vec<Value> = serde_json::from_str(&body).expect("array");
        if page.is_empty() {
            assert!(
                link(&headers).is_none(),
                "an empty page must not carry a Link header"
            );
            break;
        }
        let ids: Vec<&str> = page.iter().map(|s| s["id"].as_str().expect("id")).collect();
        let expected = format!(
            "<{base}{path}?limit=4&max_id={}>; rel=\"next\", <{base}{path}?limit=4&min_id={}>; rel=\"prev\"",
            ids[ids.len() - 1],
            ids[0]
        );
        assert_eq!(link(&headers).as_deref(), Some(expected.as_str()));
        seen.extend(ids.iter().map(|i| i.parse::<u64>().expect("numeric id")));
        url = format!("{base}{path}?limit=4&max_id={}", ids[ids.len() - 1]);
    }
    assert_eq!(seen.len(), total, "paging visits every post once");
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, ids sort by age"
    );
    // min_id returns the items right after the cursor, still newest first.
    let after = get_json(&c, &format!("{base}{path}?limit=2&min_id={}", seen[5])).await;
    let after_ids: Vec<u64> = after
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s["id"].as_str().expect("id").parse().expect("num"))
        .collect();
    assert_eq!(after_ids, vec![seen[3], seen[4]]);
    let since = get_json(&c, &format!("{base}{path}?limit=2&since_id={}", seen[5])).await;
    assert_eq!(since[0]["id"].as_str(), Some(seen[0].to_string().as_str()));
    sb.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn followers_tag_timeline_directory_and_search_behave_like_mastodon() {
    let sb = start(opts(3, 300)).await;
    let base = sb.base_url().to_string();
    let c = Client::new();

    // Followers: other sandbox accounts, paginated with Link.
    let mut with_followers = None;
    for h in handles(&c, &base).await.iter().take(40) {
        let acc = account(&c, &base, h).await;
        if acc["followers_count"].as_u64().expect("n") > 10 {
            with_followers = Some(acc);
            break;
        }
    }
    let acc = with_followers.expect("an account with followers");
    let id = acc["id"].as_str().expect("id");
    let (_, headers, body) = get(
        &c,
        &format!("{base}/api/v1/accounts/{id}/followers?limit=5"),
    )
    .await;
    let followers: Vec<Value> = serde_json::from_str(&body).expect("array");
    assert_eq!(followers.len(), 5);
    assert!(followers.iter().all(|f| f["id"] != acc["id"]));
    let l = link(&headers).expect("followers Link");
    assert!(
        l.contains(&format!(
            "max_id={}",
            followers[4]["id"].as_str().expect("id")
        )),
        "{l}"
    );

    // Tag timeline: only statuses with the tag, newest first, carried params in Link.
    let (_, headers, body) = get(&c, &format!("{base}/api/v1/timelines/tag/food?limit=5")).await;
    let page: Vec<Value> = serde_json::from_str(&body).expect("array");
    assert_eq!(page.len(), 5);
    for s in &page {
        assert!(
            s["tags"]
                .as_array()
                .expect("tags")
                .iter()
                .any(|t| t["name"] == "food"),
            "{s}"
        );
    }
    let ids: Vec<u64> = page
        .iter()
        .map(|s| s["id"].as_str().expect("id").parse().expect("num"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]));
    let expected = format!(
        "<{base}/api/v1/timelines/tag/food?limit=5&max_id={}>; rel=\"next\", <{base}/api/v1/timelines/tag/food?limit=5&min_id={}>; rel=\"prev\"",
        ids[4], ids[0]
    );
    assert_eq!(link(&headers).as_deref(), Some(expected.as_str()));
    let (status, headers, body) =
        get(&c, &format!("{base}/api/v1/timelines/tag/food?max_id=1")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "[]"));
    assert!(link(&headers).is_none());

    // Directory: offset paging, no Link header, order=new sorts by creation.
    let (_, headers, body) = get(&c, &format!("{base}/api/v1/directory?limit=10&order=new")).await;
    assert!(link(&headers).is_none());
    let dir: Vec<Value> = serde_json::from_str(&body).expect("array");
    assert_eq!(dir.len(), 10);
    let created: Vec<&str> = dir
        .iter()
        .map(|a| a["created_at"].as_str().expect("date"))
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]));
    let next = get_json(
        &c,
        &format!("{base}/api/v1/directory?limit=10&offset=10&order=new"),
    )
    .await;
    assert_ne!(next[0]["id"], dir[0]["id"]);

    // Search: always three keys; matches username, bio and niche.
    let (_, headers, body) = get(
        &c,
        &format!("{base}/api/v2/search?type=accounts&q=fitness&limit=5"),
    )
    .await;
    assert!(link(&headers).is_none());
    let res: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(res["statuses"], json!([]));
    assert_eq!(res["hashtags"], json!([]));
    let found = res["accounts"].as_array().expect("accounts");
    assert!(!found.is_empty());
    for a in found {
        let t = truth(&c, &base, a["username"].as_str().expect("name")).await;
        let text = format!("{} {} {}", a["username"], a["display_name"], a["note"]).to_lowercase();
        assert!(t["niche"] == "fitness" || text.contains("fitness"), "{a}");
    }
    let h = acc["username"].as_str().expect("name");
    let exact = get_json(&c, &format!("{base}/api/v2/search?type=accounts&q=%40{h}")).await;
    assert_eq!(exact["accounts"][0]["username"], h);
    let empty = get_json(
        &c,
        &format!("{base}/api/v2/search?type=accounts&q=zzzqqqxxx"),
    )
    .await;
    assert_eq!(
        empty,
        json!({"accounts": [], "statuses": [], "hashtags": []})
    );
    sb.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn rate_limit_answers_429_with_mastodon_body_and_headers() {
    let sb = start(SandboxOptions {
        rate_limit: Some(3),
        ..opts(1, 20)
    })
    .await;
    let base = sb.base_url().to_string();
    let c = Client::new();
    let url = format!("{base}/api/v1/directory?limit=1");
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let (status, headers, _) = get(&c, &url).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-ratelimit-limit"], "3");
        remaining.push(
            headers["x-ratelimit-remaining"]
                .to_str()
                .expect("ascii")
                .to_string(),
        );
    }
    assert_eq!(remaining, vec!["2", "1", "0"]);
    let (status, headers, body) = get(&c, &url).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body, r#"{"error":"Too many requests"}"#);
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    let reset = headers["x-ratelimit-reset"].to_str().expect("ascii");
    let parsed = chrono::NaiveDateTime::parse_from_str(reset, "%Y-%m-%dT%H:%M:%S%.6fZ")
        .expect("ISO-8601 reset with 6 digits");
    assert_eq!(reset.len(), "2026-07-02T12:35:00.000000Z".len());
    assert!(
        parsed.and_utc() > chrono::Utc::now(),
        "reset lies in the future"
    );
    // Another token has its own budget.
    let r = c
        .get(&url)
        .bearer_auth("someone-else")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    sb.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn error_rate_injects_json_5xx_and_fail_next_sends_malformed_json() {
    let sb = start(SandboxOptions {
        error_rate: 0.5,
        ..opts(1, 20)
    })
    .await;
    let base = sb.base_url().to_string();
    let c = Client::new();
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..40 {
        let (status, _, body) = get(&c, &format!("{base}/api/v1/directory?limit=1")).await;
        if status.is_server_error() {
            assert!(
                status == StatusCode::INTERNAL_SERVER_ERROR
                    || status == StatusCode::SERVICE_UNAVAILABLE
            );
            assert!(serde_json::from_str::<Value>(&body).expect("json error")["error"].is_string());
            failed += 1;
        } else {
            assert_eq!(status, StatusCode::OK);
            ok += 1;
        }
    }
    assert!(ok > 5 && failed > 5, "ok={ok} failed={failed}");
    // Admin and media routes are never faulted.
    for _ in 0..10 {
        assert_eq!(
            get(&c, &format!("{base}/_sandbox/stats")).await.0,
            StatusCode::OK
        );
    }
    sb.shutdown().await.expect("shutdown");

    let sb = start(opts(1, 20)).await;
    let base = sb.base_url().to_string();
    let r = c
        .post(format!("{base}/_sandbox/fail_next"))
        .json(&json!({"count": 2}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::OK);
    for _ in 0..2 {
        let (status, _, body) = get(&c, &format!("{base}/api/v1/directory")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            serde_json::from_str::<Value>(&body).is_err(),
            "expected malformed JSON, got {body}"
        );
    }
    let (_, _, body) = get(&c, &format!("{base}/api/v1/directory")).await;
    assert!(serde_json::from_str::<Value>(&body).is_ok());
    sb.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn latency_is_added_to_api_requests_but_not_to_admin_routes() {
    let sb = start(SandboxOptions {
        latency_ms: 150,
        ..opts(1, 10)
    })
    .await;
    let base = sb.base_url().to_string();
    let c = Client::new();
    let t = Instant::now();
    assert_eq!(
        get(&c, &format!("{base}/api/v1/directory?limit=1")).await.0,
        StatusCode::OK
    );
    assert!(t.elapsed().as_millis() >= 150);
    let t = Instant::now();
    assert_eq!(
        get(&c, &format!("{base}/_sandbox/stats")).await.0,
        StatusCode::OK
    );
    assert!(t.elapsed().as_millis() < 150);
    sb.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn media_and_avatars_are_decodable_images_with_the_right_content_type() {
    let sb = start(opts(5, 60)).await;
    let base = sb.base_url().to_string();
    let c = Client::new();
    let mut checked = 0;
    for h in handles(&c, &base).await {
        let acc = account(&c, &base, &h).await;
        let id = acc["id"].as_str().expect("id");
        let statuses = get_json(
            &c,
            &format!("{base}/api/v1/accounts/{id}/statuses?only_media=true&limit=2"),
        )
        .await;
        for s in statuses.as_array().expect("array") {
            let m = &s["media_attachments"][0];
            assert_eq!(m["type"], "image");
            for key in ["url", "preview_url"] {
                let url = m[key].as_str().expect("url");
                assert!(
                    url.starts_with(&base),
                    "media is served by the sandbox: {url}"
                );
                let r = c.get(url).send().await.expect("get media");
                assert_eq!(r.status(), StatusCode::OK);
                let ct = r.headers()["content-type"]
                    .to_str()
                    .expect("ascii")
                    .to_string();
                let bytes = r.bytes().await.expect("bytes");
                let format = image::guess_format(&bytes).expect("known image format");
                let expected = if url.ends_with(".png") {
                    image::ImageFormat::Png
                } else {
                    image::ImageFormat::Jpeg
                };
                assert_eq!(format, expected);
                assert_eq!(
                    ct,
                    if expected == image::ImageFormat::Png {
                        "image/png"
                    } else {
                        "image/jpeg"
                    }
                );
                let img = image::load_from_memory(&bytes).expect("decodes");
                assert!(img.width() >= 32 && img.height() >= 32);
                checked += 1;
            }
        }
        let avatar = c
            .get(acc["avatar"].as_str().expect("avatar"))
            .send()
            .await
            .expect("avatar");
        assert_eq!(avatar.headers()["content-type"], "image/png");
        image::load_from_memory(&avatar.bytes().await.expect("bytes")).expect("avatar decodes");
        if checked >= 6 {
            break;
        }
    }
    assert!(checked >= 6, "found too few images ({checked})");
    sb.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn direct_posts_need_a_sender_token_and_honour_idempotency_keys() {
    let sb = start(opts(2, 50)).await;
    let base = sb.base_url().to_string();
    let c = Client::new();
    let target = handles(&c, &base).await[0].clone();
    let body = json!({"status": format!("@{target} hello there"), "visibility": "direct"});
    let r = c
        .post(format!("{base}/api/v1/statuses"))
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.text().await.expect("body"),
        r#"{"error":"The access token is invalid"}"#
    );
    let r = c
        .post(format!("{base}/api/v1/statuses"))
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .post(format!("{base}/api/v1/statuses"))
        .bearer_auth(TOKEN)
        .json(&json!({"status": "  "}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.text().await.expect("body"),
        r#"{"error":"Validation failed: Text can't be blank"}"#
    );

    let text = format!("@{target}@sandbox.example hi, loved your post");
    let first: Value = post_dm(&c, &base, &text, Some("key-1"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(first["visibility"], "direct");
    assert_eq!(first["account"]["username"], SENDER);
    assert_eq!(first["mentions"][0]["username"], target.as_str());
    assert!(first["content"]
        .as_str()
        .expect("html")
        .contains("u-url mention"));
    let again = post_dm(&c, &base, &text, Some("key-1")).await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.expect("json");
    assert_eq!(again, first, "same key + token returns the same status");
    // A form-encoded body works too; a new key makes a new status.
    let r = c
        .post(format!("{base}/api/v1/statuses"))
        .bearer_auth(TOKEN)
        .header("Idempotency-Key", "key-2")
        .form(&[("status", text.as_str()), ("visibility", "direct")])
        .send()
        .await
        .expect("post");
    let second: Value = r.json().await.expect("json");
    assert_ne!(second["id"], first["id"]);

    let sent = get_json(&c, &format!("{base}/_sandbox/sent")).await;
    let sent = sent.as_array().expect("array");
    assert_eq!(sent.len(), 2, "the retried request stored nothing new");
    assert_eq!(sent[0]["sender"], SENDER);
    assert_eq!(sent[0]["recipients"], json!([target]));
    assert_eq!(sent[0]["idempotency_key"], "key-1");
    assert_eq!(sent[0]["body"], text.as_str());

    // The sender can read its own direct status back; others cannot.
    let id = first["id"].as_str().expect("id");
    let r = c
        .get(format!("{base}/api/v1/statuses/{id}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .get(format!("{base}/api/v1/statuses/{id}"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    sb.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn replies_arrive_as_mention_notifications_after_advance_and_some_opt_out() {
    let sb = start(SandboxOptions {
        reply_delay_secs: 600,
        ..opts(11, 400)
    })
    .await;
    let base = sb.base_url().to_string();
    let c = Client::new();
    let mut ours = HashSet::new();
    for h in handles(&c, &base).await.iter().take(250) {
        let s: Value = post_dm(
            &c,
            &base,
            &format!("@{h} would you like to collaborate?"),
            None,
        )
        .await
        .json()
        .await
        .expect("json");
        ours.insert(s["id"].as_str().expect("id").to_string());
    }
    let notif_url = format!("{base}/api/v1/notifications?types[]=mention");
    let r = c.get(&notif_url).send().await.expect("get");
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "notifications need a token"
    );
    let before: Value = c
        .get(&notif_url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(before, json!([]), "no reply is visible before the delay");

    let r = c
        .post(format!("{base}/_sandbox/advance"))
        .json(&json!({"seconds": 1000}))
        .send()
        .await
        .expect("advance");
    assert_eq!(r.status(), StatusCode::OK);

    let sent = get_json(&c, &format!("{base}/_sandbox/sent")).await;
    let planned: Vec<&Value> = sent
        .as_array()
        .expect("array")
        .iter()
        .flat_map(|s| s["planned_replies"].as_array().expect("list"))
        .collect();
    assert!(
        planned.len() >= 10,
        "expected a fair number of replies, got {}",
        planned.len()
    );
    assert!(planned.len() < 200, "not everyone replies");
    let opt_outs = planned.iter().filter(|p| p["opt_out"] == true).count();
    assert!(
        opt_outs >= 1 && opt_outs < planned.len(),
        "some but not all replies opt out ({opt_outs}/{})",
        planned.len()
    );

    // Walk all notifications with Link pagination.
    let mut url = format!("{notif_url}&limit=7");
    let mut got = Vec::new();
    loop {
        let r = c.get(&url).bearer_auth(TOKEN).send().await.expect("get");
        let l = link(r.headers());
        let page: Vec<Value> = r.json().await.expect("json");
        if page.is_empty() {
            assert!(l.is_none());
            break;
        }
        let l = l.expect("Link on a non-empty page");
        let last = page[page.len() - 1]["id"].as_str().expect("id").to_string();
        assert!(
            l.starts_with(&format!(
                "<{base}/api/v1/notifications?max_id={last}&types[]=mention>; rel=\"next\""
            )),
            "{l}"
        );
        got.extend(page);
        url = format!("{notif_url}&limit=7&max_id={last}");
    }
    assert_eq!(got.len(), planned.len());
    for n in &got {
        assert_eq!(n["type"], "mention");
        assert_eq!(
            n["group_key"],
            format!("ungrouped-{}", n["id"].as_str().expect("id"))
        );
        let s = &n["status"];
        assert_eq!(s["visibility"], "direct");
        assert!(
            ours.contains(s["in_reply_to_id"].as_str().expect("reply to")),
            "{s}"
        );
        assert_eq!(s["mentions"][0]["username"], SENDER);
        assert_eq!(n["account"]["id"], s["account"]["id"]);
    }
    // since_id returns nothing newer than the newest.
    let newest = got[0]["id"].as_str().expect("id");
    let none: Value = c
        .get(format!("{notif_url}&since_id={newest}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(none, json!([]));
    sb.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn profiles_change_deterministically_as_sandbox_days_pass() {
    let mk = || SandboxOptions {
        change_fraction: 0.3,
        base_url: Some("http://sandbox.test".into()),
        ..opts(9, 60)
    };
    let (a, b) = (start(mk()).await, start(mk()).await);
    let c = Client::new();
    let base_a = format!("http://{}", a.addr());
    let names = handles(&c, &base_a).await;
    let mut before = Vec::new();
    for h in &names {
        before.push(account(&c, &base_a, h).await);
    }
    for s in [&a, &b] {
        let r = c
            .post(format!("http://{}/_sandbox/advance", s.addr()))
            .json(&json!({"seconds": 3 * 86_400}))
            .send()
            .await
            .expect("advance");
        assert_eq!(r.status(), StatusCode::OK);
    }
    let (mut notes, mut posts) = (0, 0);
    for (h, old) in names.iter().zip(&before) {
        let (_, _, now_a) = get(&c, &format!("{base_a}/api/v1/accounts/lookup?acct={h}")).await;
        let (_, _, now_b) = get(
            &c,
            &format!("http://{}/api/v1/accounts/lookup?acct={h}", b.addr()),
        )
        .await;
        assert_eq!(
            now_a, now_b,
            "changes are a function of (seed, account, day)"
        );
        let now: Value = serde_json::from_str(&now_a).expect("json");
        notes += usize::from(now["note"] != old["note"]);
        posts += usize::from(now["statuses_count"] != old["statuses_count"]);
    }
    assert!(
        notes > 0 && posts > 0,
        "bios edited: {notes}, new posts: {posts}"
    );
    assert!(notes < names.len(), "only a fraction changes");
    for s in [a, b] {
        s.shutdown().await.expect("shutdown");
    }
}

async fn judge(c: &Client, base: &str, brief: &str, handle: &str) -> (Value, Value) {
    let req = json!({
        "model": "gpt-test-1",
        "temperature": 0,
        "messages": [
            {"role": "system", "content": "You qualify social profiles. Answer JSON."},
            {"role": "user", "content": [
                {"type": "text", "text": format!("Campaign brief: {brief}\n\nProfile: @{handle}\nBio: ...")},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            ]}
        ],
        "response_format": {"type": "json_schema", "json_schema": {"name": "v", "strict": true, "schema": {}}}
    });
    let resp: Value = c
        .post(format!("{base}/v1/chat/completions"))
        .json(&req)
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let content = resp["choices"][0]["message"]["content"]
        .as_str()
        .expect("content string")
        .to_string();
    (
        resp,
        serde_json::from_str(&content).expect("verdict is JSON"),
    )
}

fn pearson(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let cov: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let vx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    let vy: f64 = ys.iter().map(|y| (y - my).powi(2)).sum();
    cov / (vx.sqrt() * vy.sqrt())
}

#[tokio::test]
async fn simulated_judge_returns_labelled_verdicts_that_follow_the_hidden_truth() {
    let sb = start(opts(21, 240)).await;
    let base = sb.base_url().to_string();
    let c = Client::new();
    let brief = "We want home cooks and recipe creators who love baking and food.";
    let (mut food_scores, mut other_scores, mut propensity) = (Vec::new(), Vec::new(), Vec::new());
    for h in handles(&c, &base).await.iter().take(120) {
        let t = truth(&c, &base, h).await;
        let (resp, v) = judge(&c, &base, brief, h).await;
        assert_eq!(resp["model"], "gpt-test-1");
        assert_eq!(resp["object"], "chat.completion");
        assert!(resp["usage"]["prompt_tokens"].as_u64().expect("tokens") > 0);
        assert!(resp["usage"]["completion_tokens"].as_u64().expect("tokens") > 0);
        let score = v["score"].as_u64().expect("integer score");
        assert!(score <= 100);
        assert!(v["qualified"].is_boolean());
        let reasons = v["reasons"].as_array().expect("reasons");
        assert!(!reasons.is_empty() && reasons.len() <= 5);
        assert!(reasons[0]
            .as_str()
            .expect("reason")
            .starts_with("[simulated judge]"));
        assert!(v["red_flags"].is_array());
        assert!(v["opener"].as_str().expect("opener").chars().count() <= 300);
        if t["bot"] == true {
            assert!(score <= 12 && v["qualified"] == false);
            continue;
        }
        if t["niche"] == "food" {
            food_scores.push(score as f64);
            propensity.push(t["reply_propensity"].as_f64().expect("p"));
        } else {
            other_scores.push(score as f64);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(food_scores.len() >= 5, "too few food profiles");
    assert!(
        mean(&food_scores) > mean(&other_scores) + 25.0,
        "food {} vs other {}",
        mean(&food_scores),
        mean(&other_scores)
    );
    let r = pearson(&food_scores, &propensity);
    assert!(
        r > 0.4,
        "within the niche, score follows reply propensity (r = {r:.2})"
    );

    // The engine's prompt shape: brief between tags, profile as JSON with a bare handle.
    let food = handles(&c, &base)
        .await
        .into_iter()
        .take(120)
        .collect::<Vec<_>>();
    let mut checked = 0;
    for h in &food {
        let t = truth(&c, &base, h).await;
        if t["niche"] != "food" || t["bot"] == true {
            continue;
        }
        let req = json!({"model": "m", "messages": [
            {"role": "system", "content": "You are a careful analyst who decides whether a social media profile fits."},
            {"role": "user", "content": format!("Campaign brief:\n<brief>\n{brief}\n</brief>\n\nProfile:\n<profile>\n{{\"handle\": \"{h}\"}}\n</profile>")}
        ]});
        let resp: Value = c
            .post(format!("{base}/v1/chat/completions"))
            .json(&req)
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        let v: Value = serde_json::from_str(
            resp["choices"][0]["message"]["content"]
                .as_str()
                .expect("content"),
        )
        .expect("verdict");
        assert!(
            v["reasons"][1]
                .as_str()
                .expect("reason")
                .contains("matches the brief"),
            "{v}"
        );
        checked += 1;
    }
    assert!(checked >= 5);

    let (_, unknown) = judge(&c, &base, brief, "no_such_creator_anywhere").await;
    assert!(unknown["score"].as_u64().expect("score") < 20);
    assert_eq!(unknown["qualified"], false);
    assert!(!unknown["red_flags"].as_array().expect("flags").is_empty());
    let r = c
        .post(format!("{base}/v1/chat/completions"))
        .body("nope")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    sb.shutdown().await.expect("shutdown");
}

/// CPU time of the calling thread: robust when parallel builds load the machine.
fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

#[test]
fn a_world_of_20000_profiles_builds_in_well_under_a_few_seconds() {
    let (wall, cpu) = (Instant::now(), thread_cpu_secs());
    let sb = Sandbox::new(opts(42, 20_000), "http://sandbox.test".into());
    let (wall, cpu) = (wall.elapsed().as_secs_f64(), thread_cpu_secs() - cpu);
    assert_eq!(sb.world.n_profiles(), 20_000);
    // Even in an unoptimised debug build; the wall-clock bound is loose for loaded CI machines.
    assert!(cpu < 1.5, "building 20k profiles took {cpu:.2}s of CPU");
    assert!(wall < 8.0, "building 20k profiles took {wall:.2}s");
}
