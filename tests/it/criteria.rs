//! Campaign criteria: file validation messages, criteria_hash stability, SQL injection resistance,
//! and the SQL predicate agreeing with the in-memory evaluator on every dialect.

use omni::db::{bind_all, Db, SqlValue};
use omni::engine::criteria::lang::{CmpOp, Expr, Field, Literal, DAY_MS, HOUR_MS, WEEK_MS};
use omni::engine::criteria::{
    clauses, compile, compile_filter, criteria_hash, eval, parse_campaign, parse_expr,
    CampaignSpec, FeatureRow,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sqlx::Row;

use crate::common;

const PLATFORMS: &[&str] = &["sandbox", "mastodon"];
const NOW: i64 = 1_700_000_000_000;
const EXAMPLE: &str = include_str!("../../examples/vegan.toml");

fn parse_ok(src: &str) -> CampaignSpec {
    match parse_campaign("vegan.toml", src, PLATFORMS) {
        Ok(spec) => spec,
        Err(e) => panic!("expected a valid campaign, got:\n{e}"),
    }
}

fn parse_err(src: &str) -> String {
    parse_campaign("vegan.toml", src, PLATFORMS)
        .expect_err("expected errors")
        .to_string()
}

// ---------------------------------------------------------------- campaign files

#[test]
fn example_campaign_parses_with_every_section() {
    let spec = parse_ok(EXAMPLE);
    assert_eq!(spec.name, "Plant-based food creators");
    assert_eq!(spec.platform, "sandbox");
    let f = &spec.filter;
    assert_eq!(f.followers.unwrap().min, Some(5000));
    assert_eq!(f.followers.unwrap().max, Some(250_000));
    assert_eq!(f.engagement_rate.unwrap().min, Some(0.01));
    assert_eq!(f.languages, vec!["en", "de"]);
    assert_eq!(f.active_within_days, Some(30));
    assert!(f.exclude_bots);
    assert_eq!(
        f.where_.as_ref().unwrap().source(),
        "posts_per_week >= 1 and not has_email"
    );
    assert_eq!(spec.discovery.followers_of, vec!["chef_anna"]);
    assert!(spec.discovery.directory);
    assert_eq!(spec.discovery.max_profiles, 5000);
    assert_eq!(spec.qualify.shortlist_k, 200);
    assert_eq!(spec.qualify.model, None);
    let outreach = spec.outreach.as_ref().unwrap();
    assert_eq!(outreach.accounts, vec!["omni_team"]);
    assert_eq!(outreach.cooldown_days, 90);
    // Stored as JSON in campaigns.spec and read back unchanged.
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<CampaignSpec>(&json).unwrap(), spec);
}

#[test]
fn minimal_campaign_takes_defaults() {
    let spec = parse_ok("name = \"x\"\nplatform = \"mastodon\"\nbrief = \"anyone\"\n");
    assert_eq!(spec.qualify.threshold, 70);
    assert_eq!(spec.qualify.max_images, 3);
    assert_eq!(spec.qualify.daily_llm_calls, 500);
    assert_eq!(spec.discovery.max_profiles, 1000);
    assert!(spec.outreach.is_none());
    assert_eq!(spec.filter.to_expr(), Expr::Const(true));
}

#[test]
fn inverted_range_names_file_line_column_and_path() {
    let src = "name = \"x\"\nplatform = \"sandbox\"\nbrief = \"b\"\n\n[filter]\n# sizes\nfollowers = { min = 300000, max = 250000 }\n";
    assert_eq!(
        parse_err(src),
        "vegan.toml:7:13: filter.followers: min (300000) is greater than max (250000)"
    );
}

#[test]
fn every_error_is_reported_in_file_order() {
    let src = r#"name = "x"
platform = "sandbx"
brief = "b"
colour = "red"

[filter]
folowers = { min = 1 }
engagement_rate = { min = 0.5, max = 0.1 }
languages = ["en", "xx", 3]
active_within_days = "30"
where = "followers >= and is_bot"

[qualify]
threshold = 150
max_images = 4
shortlist_k = 0
model = 7

[outreach]
accounts = ["a"]
"#;
    let expected = [
        "vegan.toml:2:12: platform: unknown platform 'sandbx'; did you mean 'sandbox'? (configured: sandbox, mastodon)",
        "vegan.toml:4:1: colour: unknown key; expected one of: name, platform, brief, filter, discovery, qualify, outreach",
        "vegan.toml:7:1: filter.folowers: unknown key; did you mean 'followers'?",
        "vegan.toml:8:19: filter.engagement_rate: min (0.5) is greater than max (0.1)",
        "vegan.toml:9:20: filter.languages[1]: unknown language code 'xx': use ISO 639-1 codes like \"en\" or \"de\"",
        "vegan.toml:9:26: filter.languages[2]: expected a string, found an integer",
        "vegan.toml:10:22: filter.active_within_days: expected an integer, found a string",
        "vegan.toml:11:23: filter.where: expected a value after '>='",
        "vegan.toml:14:13: qualify.threshold: must be between 0 and 100, got 150",
        "vegan.toml:15:14: qualify.max_images: must be between 0 and 3, got 4",
        "vegan.toml:16:15: qualify.shortlist_k: must be at least 1, got 0",
        "vegan.toml:17:9: qualify.model: expected a string, found an integer",
        "vegan.toml:19:1: outreach.template: missing required key 'template'",
    ];
    assert_eq!(parse_err(src), expected.join("\n"));
}

#[test]
fn missing_required_keys_and_wrong_section_types() {
    let src = "platform = \"sandbox\"\nfilter = 5\nbrief = \"   \"\n";
    assert_eq!(
        parse_err(src),
        [
            "vegan.toml:1:1: name: missing required key 'name'",
            "vegan.toml:2:10: filter: expected a table, found an integer",
            "vegan.toml:3:9: brief: must not be empty",
        ]
        .join("\n")
    );
}

#[test]
fn toml_syntax_errors_are_located() {
    let err = parse_campaign("c.toml", "name = \"x\"\nplatform = \n", PLATFORMS).unwrap_err();
    assert_eq!(err.0.len(), 1);
    let e = &err.0[0];
    assert_eq!(
        (e.file.as_str(), e.line, e.path.as_str()),
        ("c.toml", 2, "")
    );
    assert!(e.to_string().starts_with("c.toml:2:"), "{e}");
    assert!(!e.message.contains('\n'), "one error per line: {e}");
}

#[test]
fn where_errors_inside_multiline_literal_strings_point_into_the_file() {
    let src = "name = \"x\"\nplatform = \"sandbox\"\nbrief = \"b\"\n[filter]\nwhere = '''\nfollowers > 5 and\n  folowers < 9'''\n";
    assert_eq!(
        parse_err(src),
        "vegan.toml:7:3: filter.where: unknown field 'folowers'; did you mean 'followers'?"
    );
    // With escapes the file text differs from the value: the error names the expression position.
    let src = "name = \"x\"\nplatform = \"sandbox\"\nbrief = \"b\"\n[filter]\nwhere = \"text = \\\"a\\\" and x\"\n";
    assert_eq!(
        parse_err(src),
        "vegan.toml:5:9: filter.where: unknown field 'x'; fields are: followers, following, posts_count, engagement_rate, avg_likes, avg_comments, posts_per_week, last_post_at, account_age_days, language, is_bot, has_link, has_email, text (at line 1, column 16 of the expression)"
    );
}

#[test]
fn language_codes_are_case_insensitive_and_stored_lower_case() {
    let spec = parse_ok("name = \"x\"\nplatform = \"sandbox\"\nbrief = \"b\"\n[filter]\nlanguages = [\"EN\", \"pt\"]\n");
    assert_eq!(spec.filter.languages, vec!["en", "pt"]);
}

#[test]
fn parser_error_columns() {
    for (src, want) in [
        ("followers >= and is_bot", "where:1:14: expected a value after '>='"),
        ("is_bot or", "where:1:10: expected a condition after 'or'"),
        ("language in \"en\"", "where:1:13: expected '(' after 'in', found '\"'"),
        ("language in (\"en\" \"de\")", "where:1:19: expected ',' or ')' in the list, found '\"'"),
        ("followers > 10x", "where:1:13: unknown suffix 'x' after 10: numbers take k or m (10k, 1.5m), durations h, d or w (30d)"),
        ("has_linc", "where:1:1: unknown field 'has_linc'; did you mean 'has_link'?"),
        ("not (is_bot and)", "where:1:16: expected a condition after 'and'"),
    ] {
        assert_eq!(parse_expr(src).unwrap_err().to_string(), want, "{src}");
    }
}

// ---------------------------------------------------------------- criteria_hash

fn hash_of(src: &str, model: &str) -> String {
    criteria_hash(&parse_ok(src), model)
}

#[test]
fn criteria_hash_ignores_layout_key_order_and_list_order() {
    let base = hash_of(EXAMPLE, "m1");
    // Sections and keys reordered, other whitespace and comments, lists reordered, keywords in
    // other case, the `where` reformatted, and fields that do not change a verdict edited.
    let src = r#"
[qualify]
max_images = 3
threshold = 90            # the threshold decides leads, not verdicts
shortlist_k = 10

[filter]
where = "posts_per_week>=1.0   and NOT has_email"
exclude_bots = true
active_within_days = 30
keywords_none = ["GIVEAWAY"]
keywords_any = ["plant-based", "Vegan", "vegan"]
languages = ["de", "en"]
engagement_rate = { min = 0.01 }
followers = { max = 250000, min = 5000 }

[discovery]
hashtags = ["other"]
"#;
    let src = format!(
        "brief = \"\"\"Home cooks and chefs who post vegan recipes\n   with their own photos; not brands or resellers.\"\"\"\nplatform = \"mastodon\"\nname = \"Renamed\"\n{src}"
    );
    assert_eq!(hash_of(&src, "m1"), base);
}

#[test]
fn criteria_hash_changes_with_each_verdict_input() {
    let base = hash_of(EXAMPLE, "m1");
    let variants = [
        EXAMPLE.replace("own photos", "own pictures"),
        EXAMPLE.replace("min = 5000", "min = 5001"),
        EXAMPLE.replace("\"giveaway\"", "\"giveaway\", \"promo\""),
        EXAMPLE.replace("posts_per_week >= 1", "posts_per_week > 1"),
        EXAMPLE.replace("max_images = 3", "max_images = 2"),
        EXAMPLE.replace("exclude_bots = true", "exclude_bots = false"),
    ];
    for v in &variants {
        assert_ne!(hash_of(v, "m1"), base, "{v}");
    }
    assert_ne!(hash_of(EXAMPLE, "m2"), base);
    assert_eq!(base.len(), 64);
    assert!(base.chars().all(|c| c.is_ascii_hexdigit()));
}

// ---------------------------------------------------------------- SQL: injection and clauses

async fn seed_profiles(db: &Db, n: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n);
    for k in 0..n {
        let row = sqlx::query(
            "INSERT INTO profiles_raw (platform, external_id, handle, payload, content_hash, first_seen, last_seen, last_changed) \
             VALUES ('sandbox', $1, $2, '{}', 'h', 0, 0, 0) RETURNING id",
        )
        .bind(format!("ext{k}"))
        .bind(format!("user{k}"))
        .fetch_one(db.pool())
        .await
        .expect("insert profiles_raw");
        ids.push(row.try_get::<i64, _>(0).expect("id"));
    }
    ids
}

async fn insert_features(db: &Db, rows: &[(i64, FeatureRow)]) {
    let mut tx = db.pool().begin().await.expect("begin");
    sqlx::query("DELETE FROM profile_features")
        .execute(&mut *tx)
        .await
        .expect("delete");
    for (id, r) in rows {
        let q = sqlx::query(
            "INSERT INTO profile_features (profile_id, feature_version, followers, following, posts_count, \
             engagement_rate, avg_likes, avg_comments, posts_per_week, last_post_at, account_age_days, language, \
             is_bot, has_link, has_email, text, image_keys, updated_at) \
             VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, '[]', 0)",
        );
        // Bound directly rather than through SqlValue::Null: PostgreSQL rejects an integer-typed
        // NULL for the TEXT column `language`.
        q.bind(*id)
            .bind(r.followers)
            .bind(r.following)
            .bind(r.posts_count)
            .bind(r.engagement_rate)
            .bind(r.avg_likes)
            .bind(r.avg_comments)
            .bind(r.posts_per_week)
            .bind(r.last_post_at)
            .bind(r.account_age_days)
            .bind(r.language.clone())
            .bind(i64::from(r.is_bot))
            .bind(i64::from(r.has_link))
            .bind(i64::from(r.has_email))
            .bind(r.text.clone())
            .execute(&mut *tx)
            .await
            .expect("insert profile_features");
    }
    tx.commit().await.expect("commit");
}

/// Ids selected by `expr` compiled to SQL, embedded after one caller parameter (`$1`).
async fn select_ids(db: &Db, expr: &Expr) -> Result<Vec<i64>, sqlx::Error> {
    let pred = compile(expr, "pf", 2);
    let sql = format!(
        "SELECT pf.profile_id FROM profile_features pf WHERE pf.profile_id > $1 AND {} ORDER BY pf.profile_id",
        pred.sql
    );
    let mut values = vec![SqlValue::Int(0)];
    values.extend(pred.bind_params(NOW));
    let rows = bind_all(sqlx::query(&sql), &values)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(|r| r.try_get::<i64, _>(0)).collect()
}

async fn table_counts(db: &Db) -> (i64, i64) {
    let raw: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM profiles_raw")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let pf: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM profile_features")
        .fetch_one(db.pool())
        .await
        .unwrap();
    (raw, pf)
}

#[tokio::test]
async fn hostile_values_are_bound_inertly_and_hostile_names_rejected() {
    for dialect in common::dialects() {
        let t = common::fresh(dialect).await;
        let ids = seed_profiles(&t.db, 3).await;
        let rows: Vec<(i64, FeatureRow)> = ids
            .iter()
            .map(|id| {
                (
                    *id,
                    FeatureRow {
                        text: "it's'); drop table profiles_raw; --".into(),
                        language: Some("en".into()),
                        ..FeatureRow::default()
                    },
                )
            })
            .collect();
        insert_features(&t.db, &rows).await;

        for bad in [
            "followers) OR (1=1",
            "followers > 1; DROP TABLE profiles_raw; --",
            "text ~ 'x'",
            "profiles_raw.id > 0",
            "\"x\" = text",
        ] {
            assert!(parse_expr(bad).is_err(), "{bad} must not parse");
        }
        let key_src = "name = \"x\"\nplatform = \"sandbox\"\nbrief = \"b\"\n[filter]\n\"followers) OR (1=1\" = 5\n";
        assert!(parse_err(key_src).contains("unknown key"));

        let hostile = [
            r#"text ~ "'); DROP TABLE profiles_raw; --""#,
            r#"language = "x' OR '1'='1""#,
            r#"language in ("en'); DELETE FROM profile_features; --", "en")"#,
            r#"text = "\"; DROP TABLE profile_features; --""#,
        ];
        for src in hostile {
            let expr = parse_expr(src).unwrap();
            let pred = compile(&expr, "pf", 1);
            assert!(
                !pred.sql.contains("DROP") && !pred.sql.contains("DELETE"),
                "{}",
                pred.sql
            );
            let want: Vec<i64> = rows
                .iter()
                .filter(|(_, r)| eval(&expr, r, NOW))
                .map(|(id, _)| *id)
                .collect();
            assert_eq!(
                select_ids(&t.db, &expr).await.unwrap(),
                want,
                "{dialect}: {src}"
            );
        }
        // The structured filters bind their values the same way.
        let spec = parse_ok(
            "name = \"x\"\nplatform = \"sandbox\"\nbrief = \"b\"\n[filter]\nkeywords_any = [\"'); DROP TABLE profiles_raw; --\"]\nkeywords_none = [\"%\"]\n",
        );
        let expr = spec.filter.to_expr();
        assert!(!compile_filter(&spec.filter, "pf", 1).sql.contains("DROP"));
        // Every row's text contains the hostile keyword and none contains '%' (a literal here).
        assert!(rows.iter().all(|(_, r)| eval(&expr, r, NOW)));
        assert_eq!(select_ids(&t.db, &expr).await.unwrap(), ids, "{dialect}");
        assert_eq!(
            table_counts(&t.db).await,
            (3, 3),
            "{dialect}: tables intact"
        );
    }
}

#[tokio::test]
async fn explain_clauses_count_on_their_own() {
    for dialect in common::dialects() {
        let t = common::fresh(dialect).await;
        let ids = seed_profiles(&t.db, 4).await;
        let mk = |followers, lang: &str, bot| FeatureRow {
            followers,
            language: Some(lang.into()),
            is_bot: bot,
            last_post_at: Some(NOW - DAY_MS),
            text: "vegan".into(),
            ..FeatureRow::default()
        };
        let rows = vec![
            (ids[0], mk(10_000, "en", false)),
            (ids[1], mk(10_000, "fr", false)),
            (ids[2], mk(100, "en", false)),
            (ids[3], mk(10_000, "de", true)),
        ];
        insert_features(&t.db, &rows).await;
        let spec = parse_ok(
            "name = \"x\"\nplatform = \"sandbox\"\nbrief = \"b\"\n[filter]\nfollowers = { min = 5000 }\nlanguages = [\"en\", \"de\"]\nexclude_bots = true\n",
        );
        let mut counts = Vec::new();
        for (label, pred) in clauses(&spec) {
            let sql = format!(
                "SELECT COUNT(*) FROM profile_features pf WHERE {}",
                pred.sql
            );
            let row = bind_all(sqlx::query(&sql), &pred.bind_params(NOW))
                .fetch_one(t.db.pool())
                .await
                .unwrap();
            counts.push((label, row.try_get::<i64, _>(0).unwrap()));
        }
        assert_eq!(
            counts,
            vec![
                ("filter.followers: followers >= 5000".to_string(), 3),
                (
                    "filter.languages: language in (\"de\", \"en\")".to_string(),
                    3
                ),
                ("filter.exclude_bots: not is_bot".to_string(), 3),
            ],
            "{dialect}"
        );
        assert_eq!(
            select_ids(&t.db, &spec.filter.to_expr()).await.unwrap(),
            vec![ids[0]],
            "{dialect}"
        );
    }
}

// ---------------------------------------------------------------- differential: SQL vs evaluator

const INT_FIELDS: [Field; 4] = [
    Field::Followers,
    Field::Following,
    Field::PostsCount,
    Field::AccountAgeDays,
];
const FLOAT_FIELDS: [Field; 4] = [
    Field::EngagementRate,
    Field::AvgLikes,
    Field::AvgComments,
    Field::PostsPerWeek,
];
const FLAGS: [Field; 3] = [Field::IsBot, Field::HasLink, Field::HasEmail];
const OPS: [CmpOp; 6] = [
    CmpOp::Eq,
    CmpOp::Ne,
    CmpOp::Lt,
    CmpOp::Le,
    CmpOp::Gt,
    CmpOp::Ge,
];
const WORDS: [&str; 10] = [
    "vegan",
    "Vegan",
    "recipes",
    "100%",
    "a_b",
    "back\\slash",
    "été",
    "plant-based",
    "giveaway",
    "x'y",
];
const LANGS: [&str; 4] = ["en", "de", "fr", "EN"];

fn number() -> impl Strategy<Value = Literal> {
    prop_oneof![
        prop::sample::select(vec![0i64, 1, 5, 10, 1000, 10_000, -1]).prop_map(Literal::Int),
        prop::sample::select(vec![0.5f64, 2.5, 0.01, 0.05, 999.5]).prop_map(Literal::Float),
    ]
}

fn numeric_field() -> impl Strategy<Value = Field> {
    prop::sample::select([INT_FIELDS.to_vec(), FLOAT_FIELDS.to_vec()].concat())
}

fn text_value() -> impl Strategy<Value = String> {
    prop::sample::select([WORDS.to_vec(), LANGS.to_vec(), vec!["", "vegan recipes"]].concat())
        .prop_map(str::to_string)
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        (
            numeric_field(),
            prop::sample::select(OPS.to_vec()),
            number()
        )
            .prop_map(|(field, op, value)| Expr::Cmp { field, op, value }),
        (
            numeric_field(),
            prop::collection::vec(number(), 1..4),
            any::<bool>()
        )
            .prop_map(|(field, values, negated)| Expr::In {
                field,
                values,
                negated
            }),
        (
            prop::sample::select(vec![Field::Language, Field::Text]),
            any::<bool>(),
            text_value()
        )
            .prop_map(|(field, eq, v)| Expr::Cmp {
                field,
                op: if eq { CmpOp::Eq } else { CmpOp::Ne },
                value: Literal::Str(v)
            }),
        (prop::collection::vec(text_value(), 1..4), any::<bool>()).prop_map(|(vs, negated)| {
            Expr::In {
                field: Field::Language,
                values: vs.into_iter().map(Literal::Str).collect(),
                negated,
            }
        }),
        (
            prop::sample::select(vec![Field::Language, Field::Text]),
            text_value()
        )
            .prop_map(|(field, v)| Expr::Contains {
                field,
                needle: v.to_lowercase()
            }),
        prop::sample::select(FLAGS.to_vec()).prop_map(Expr::Flag),
        (
            prop::sample::select(vec![CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge]),
            prop::sample::select(vec![HOUR_MS, DAY_MS, 3 * DAY_MS, WEEK_MS, 30 * DAY_MS])
        )
            .prop_map(|(op, ms)| Expr::Age {
                field: Field::LastPostAt,
                op,
                ms
            }),
        any::<bool>().prop_map(Expr::Const),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner, 2..4).prop_map(Expr::Or),
        ]
    })
}

fn feature_row() -> impl Strategy<Value = FeatureRow> {
    let int = || {
        prop_oneof![
            prop::sample::select(vec![0i64, 1, 5, 10, 999, 1000, 10_000]),
            0i64..20_000
        ]
    };
    let float = || {
        prop_oneof![
            prop::sample::select(vec![0.0f64, 0.01, 0.05, 0.5, 2.5, 10.0]),
            0.0f64..20.0
        ]
    };
    let last_post = prop_oneof![
        Just(None),
        prop::sample::select(vec![0i64, 1, 23, 24, 25, 72, 168, 720, 721, 2000])
            .prop_map(|h| Some(NOW - h * HOUR_MS)),
        (-2i64..2_000).prop_map(|m| Some(NOW - m * 60_000)),
    ];
    let language = prop_oneof![
        Just(None),
        prop::sample::select(LANGS.to_vec()).prop_map(|l| Some(l.to_string()))
    ];
    let text =
        prop::collection::vec(prop::sample::select(WORDS.to_vec()), 0..4).prop_map(|w| w.join(" "));
    (
        (int(), int(), int(), int()),
        (float(), float(), float(), float()),
        last_post,
        language,
        (any::<bool>(), any::<bool>(), any::<bool>()),
        text,
    )
        .prop_map(
            |((fo, fg, pc, age), (er, al, ac, ppw), last_post_at, language, (b, l, e), text)| {
                FeatureRow {
                    followers: fo,
                    following: fg,
                    posts_count: pc,
                    engagement_rate: er,
                    avg_likes: al,
                    avg_comments: ac,
                    posts_per_week: ppw,
                    last_post_at,
                    account_age_days: age,
                    language,
                    is_bot: b,
                    has_link: l,
                    has_email: e,
                    text,
                }
            },
        )
}

#[test]
fn sql_predicate_selects_exactly_what_the_evaluator_selects() {
    const ROWS: usize = 40;
    let rt = tokio::runtime::Runtime::new().unwrap();
    for dialect in common::dialects() {
        let (t, ids) = rt.block_on(async {
            let t = common::fresh(dialect).await;
            let ids = seed_profiles(&t.db, ROWS).await;
            (t, ids)
        });
        let mut runner = TestRunner::new(Config {
            cases: 64,
            failure_persistence: None,
            ..Config::default()
        });
        let strategy = (expr(), prop::collection::vec(feature_row(), ROWS));
        let result = runner.run(&strategy, |(e, rows)| {
            // The printed form parses back to an expression with the same meaning.
            let reparsed = parse_expr(&e.to_string())
                .map_err(|err| TestCaseError::fail(format!("{e} does not reparse: {err}")))?;
            prop_assert_eq!(parse_expr(&reparsed.to_string()).unwrap(), reparsed.clone());
            let rows: Vec<(i64, FeatureRow)> = ids.iter().copied().zip(rows).collect();
            let want: Vec<i64> = rows
                .iter()
                .filter(|(_, r)| eval(&e, r, NOW))
                .map(|(id, _)| *id)
                .collect();
            let want_reparsed: Vec<i64> = rows
                .iter()
                .filter(|(_, r)| eval(&reparsed, r, NOW))
                .map(|(id, _)| *id)
                .collect();
            prop_assert_eq!(
                &want_reparsed,
                &want,
                "reparsing changed the meaning of {}",
                e
            );
            let got = rt.block_on(async {
                insert_features(&t.db, &rows).await;
                select_ids(&t.db, &e).await
            });
            let got = got.map_err(|err| {
                TestCaseError::fail(format!(
                    "{dialect}: SQL failed for {e}: {err}\n{}",
                    compile(&e, "pf", 2).sql
                ))
            })?;
            prop_assert_eq!(
                got,
                want,
                "{}: {} -> {}",
                dialect,
                e,
                compile(&e, "pf", 2).sql
            );
            Ok(())
        });
        if let Err(e) = result {
            panic!("{dialect}: {e}");
        }
    }
}
