//! `criteria_hash`: identifies everything that can change an LLM verdict on a profile, so a
//! verdict is reused exactly while its criteria are unchanged.
//!
//! The hash covers the canonical form of the filters (lists sorted, de-duplicated and lower-cased,
//! the `where` expression re-printed from its syntax tree), the brief with whitespace collapsed,
//! the model and the image count. Key order, whitespace and comments in the file do not change it.

use sha2::{Digest, Sha256};

use super::spec::CampaignSpec;

/// Bumped when the canonical form changes, so old hashes never collide with new ones.
const CANONICAL_VERSION: &str = "omni-criteria-v1";

/// The canonical text the hash is taken over (shown by `omni campaign explain`).
pub fn canonical_criteria(spec: &CampaignSpec, model: &str) -> String {
    let brief = spec.brief.split_whitespace().collect::<Vec<_>>().join(" ");
    // serde_json escapes each part, so no field can bleed into the next.
    serde_json::json!([
        CANONICAL_VERSION,
        spec.filter.to_expr().to_string(),
        brief,
        model.trim(),
        spec.qualify.max_images,
    ])
    .to_string()
}

/// SHA-256 (hex) of [`canonical_criteria`].
pub fn criteria_hash(spec: &CampaignSpec, model: &str) -> String {
    hex::encode(Sha256::digest(canonical_criteria(spec, model).as_bytes()))
}
