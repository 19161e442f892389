//! The audit log's verifiable surface: the latest signed checkpoint, inclusion and consistency
//! proofs (operators), and the public audit key (every participant).
//!
//! | method, path | who | answer |
//! |---|---|---|
//! | `GET /v1/audit/checkpoint` | `operator` | the latest signed checkpoint (below) |
//! | `GET /v1/audit/proof/inclusion?index=I[&size=N]` | `operator` | inclusion proof of entry `I` in the tree of `N` entries (default: the latest checkpoint's size) |
//! | `GET /v1/audit/proof/consistency?from=M[&to=N]` | `operator` | consistency proof from the tree of `M` entries to that of `N` (default: the latest checkpoint's size) |
//! | `GET /v1/audit/public-key` | any participant | the audit key in every form (below) |
//! | `GET /v1/audit/jwks.json` | any participant | the JWKS receipts verify with |
//! | `GET /v1/audit/public-key.pem` | any participant | SubjectPublicKeyInfo PEM (`openssl pkey -pubin` reads it) |
//!
//! Checkpoint answer:
//! ```text
//! {"origin": "<gateway id>/audit", "tree_size": N, "root_hash": "<hex>",
//!  "root_hash_base64": "<as in the note>", "time": "<RFC 3339>",
//!  "signature": "<base64(key ID ‖ Ed25519 signature), as in the note>", "note": "<C2SP signed note>"}
//! ```
//! The `note` is what to keep and check (`siirto audit verify-proof --checkpoint` takes the note
//! or this whole answer); the other members repeat what it says.
//!
//! Proof answers are the proof documents of [`crate::trail`] (`"type": "inclusion"` with the
//! entry itself, or `"type": "consistency"`). Public key answer:
//! ```text
//! {"alg": "EdDSA", "kid": "<RFC 7638 thumbprint>", "jwk": {...}, "jwks": {"keys": [...]},
//!  "pem": "-----BEGIN PUBLIC KEY-----...", "origin": "<gateway id>/audit",
//!  "note_verifier_key": "<origin>+<key id>+<base64 key>"}
//! ```
//!
//! Errors: `invalid_query` (400: a missing or malformed parameter, `from` = 0 or `from` > `to`),
//! `index_out_of_range` (400: `index` ≥ `size`), `size_out_of_range` (400: more entries than the
//! log holds), `no_checkpoint` (404: a size was left to default and nothing is checkpointed yet),
//! `audit_log_unverified` (503: the log does not verify beyond the size the trail reached),
//! `checkpoint_invalid` (500: the stored checkpoint does not verify with the audit key).
//!
//! Proofs and checkpoints carry no personal data beyond the entry's pseudonym, so reading them
//! is not itself audited (a polling monitor would otherwise grow the log it watches).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::StatusCode;
use hyper::Response;
use serde_json::json;

use super::{ApiError, ErrorCode, json_response, query_pairs, require_role, text_response};
use crate::server::Body;
use crate::state::Gateway;
use crate::trail::{ProofDocument, TrailError};
use siirto_core::audit::ProofError;
use siirto_core::clock::hex;
use siirto_core::identity::AuthenticatedParticipant;
use siirto_core::identity::Role;

fn number(pairs: &[(String, String)], name: &str) -> Result<Option<u64>, ApiError> {
    match pairs.iter().find(|(k, _)| k == name) {
        None => Ok(None),
        Some((_, v)) => v.parse::<u64>().map(Some).map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidQuery,
                format!("`{name}` must be a non-negative integer"),
            )
        }),
    }
}

fn only(pairs: &[(String, String)], allowed: &[&str]) -> Result<(), ApiError> {
    match pairs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        Some((k, _)) => Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("unknown parameter `{k}`"),
        )),
        None => Ok(()),
    }
}

/// The latest stored checkpoint's size, for parameters left to default.
async fn latest_size(gw: &Gateway) -> Result<u64, ApiError> {
    gw.store
        .latest_checkpoint()
        .await?
        .map(|c| c.tree_size)
        .ok_or_else(no_checkpoint)
}

fn no_checkpoint() -> ApiError {
    ApiError::new(ErrorCode::NoCheckpoint, "no checkpoint has been signed yet")
}

fn proof_error(gw: &Gateway, e: TrailError) -> ApiError {
    match e {
        TrailError::Store(e) => e.into(),
        TrailError::Proof(ProofError::IndexOutOfRange { index, size }) => ApiError::new(
            ErrorCode::IndexOutOfRange,
            format!("entry {index} is not in a tree of {size} entries"),
        ),
        TrailError::Proof(ProofError::SizeTooLarge { size, available }) => {
            if gw.trail.status().broken.is_some() {
                unverified(available)
            } else {
                ApiError::new(
                    ErrorCode::SizeOutOfRange,
                    format!("the log holds {available} entries, not {size}"),
                )
            }
        }
        TrailError::Proof(ProofError::Pruned { base }) => ApiError::new(
            ErrorCode::Pruned,
            format!(
                "audit entries before {base} were pruned by [retention] audit: proofs start at size {base}"
            ),
        ),
        TrailError::Proof(e) => ApiError::new(ErrorCode::InvalidQuery, e.to_string()),
        TrailError::Broken { verified, .. } => unverified(verified),
    }
}

fn unverified(verified: u64) -> ApiError {
    ApiError::new(
        ErrorCode::AuditLogUnverified,
        format!(
            "the audit log does not verify after entry {verified}; proofs beyond it are not given"
        ),
    )
}

/// `GET /v1/audit/checkpoint`
pub async fn checkpoint(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
) -> Result<Response<Body>, ApiError> {
    require_role(caller, Role::Operator)?;
    let row = gw
        .store
        .latest_checkpoint()
        .await?
        .ok_or_else(no_checkpoint)?;
    let signed = gw
        .trail
        .checkpoint_verifier()
        .verify(&row.note)
        .map_err(|e| {
            tracing::error!(error = %e, tree_size = row.tree_size, "stored checkpoint does not verify");
            ApiError::new(ErrorCode::CheckpointInvalid,
                "the stored checkpoint does not verify with the audit key",
            )
        })?;
    let cp = signed.checkpoint();
    // The audit key's signature line: `— <origin> <base64(key ID ‖ signature)>`.
    let signature = signed
        .as_str()
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("\u{2014} "))
        .filter_map(|l| l.split_once(' '))
        .find(|(name, _)| *name == cp.origin)
        .map(|(_, sig)| sig.to_owned());
    // The witnesses' cosignatures kept for it, appended to the note as signature lines.
    let cosignatures = gw.store.cosignatures(row.tree_size).await?;
    let mut note = signed.as_str().to_owned();
    for c in &cosignatures {
        note.push_str(&c.line);
    }
    let cosignatures: Vec<serde_json::Value> = cosignatures
        .iter()
        .map(|c| {
            json!({
                "witness": c.witness,
                "timestamp": c.timestamp,
                "signature": c.line.trim_end().rsplit(' ').next().unwrap_or_default(),
            })
        })
        .collect();
    // `[audit] witness_quorum`: whether this checkpoint has the cosignatures a verifier that
    // requires the quorum (`verify-proof --quorum`) asks for; absent without witnesses.
    let witnessed = (!gw.witnesses.verifiers.is_empty()).then(|| {
        json!({
            "quorum": gw.witnesses.quorum,
            "cosigned": cosignatures.len(),
            "met": cosignatures.len() >= gw.witnesses.quorum,
        })
    });
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "witnessed": witnessed,
            "cosignatures": cosignatures,
            "origin": cp.origin,
            "tree_size": cp.tree_size,
            "root_hash": hex(&cp.root_hash),
            "root_hash_base64": STANDARD.encode(cp.root_hash),
            "time": cp.time.rfc3339(),
            "signature": signature,
            "note": note,
        }),
    ))
}

/// `GET /v1/audit/proof/inclusion?index=I[&size=N]`
pub async fn inclusion(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    require_role(caller, Role::Operator)?;
    let pairs = query_pairs(query);
    only(&pairs, &["index", "size"])?;
    let index = number(&pairs, "index")?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidQuery, "`index` is required"))?;
    let size = match number(&pairs, "size")? {
        Some(s) => s,
        None => latest_size(gw).await?,
    };
    let (leaf_hash, proof, root_hash) = gw
        .trail
        .inclusion(&gw.store, index, size)
        .await
        .map_err(|e| proof_error(gw, e))?;
    let entry = gw
        .store
        .audit_range(index, 1)
        .await?
        .into_iter()
        .find(|e| e.seq == index)
        .map(Box::new);
    if entry.as_ref().is_some_and(|e| e.leaf_hash() != leaf_hash) {
        // Served anyway: the proof is of the verified tree, and a client recomputing the leaf
        // from this entry sees that the stored row changed.
        tracing::error!(
            seq = index,
            "stored audit entry no longer matches its verified leaf"
        );
    }
    let doc = ProofDocument::Inclusion {
        leaf_index: index,
        tree_size: size,
        leaf_hash,
        root_hash,
        proof,
        entry,
    };
    Ok(json_response(StatusCode::OK, &doc.to_json()))
}

/// `GET /v1/audit/proof/consistency?from=M[&to=N]`
pub async fn consistency(
    gw: &Arc<Gateway>,
    caller: &AuthenticatedParticipant,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    require_role(caller, Role::Operator)?;
    let pairs = query_pairs(query);
    only(&pairs, &["from", "to"])?;
    let from = number(&pairs, "from")?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidQuery, "`from` is required"))?;
    let to = match number(&pairs, "to")? {
        Some(s) => s,
        None => latest_size(gw).await?,
    };
    if from == 0 || from > to {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("a consistency proof needs 0 < from ({from}) <= to ({to})"),
        ));
    }
    let (from_root, to_root, proof) = gw
        .trail
        .consistency(&gw.store, from, to)
        .await
        .map_err(|e| proof_error(gw, e))?;
    let doc = ProofDocument::Consistency {
        from,
        to,
        from_root,
        to_root,
        proof,
    };
    Ok(json_response(StatusCode::OK, &doc.to_json()))
}

/// `GET /v1/audit/public-key`, `/v1/audit/jwks.json`, `/v1/audit/public-key.pem`: for every
/// participant (receipts are verified by e-services and destinations).
pub fn public_key(gw: &Arc<Gateway>, form: KeyForm) -> Response<Body> {
    let key = gw.audit_key.public_key();
    // The current key first, then the earlier ones: receipts and checkpoints they signed verify.
    let jwks = json!({
        "keys": std::iter::once(&key)
            .chain(&gw.audit_previous_keys)
            .map(|k| k.to_jwk())
            .collect::<Vec<_>>()
    });
    match form {
        KeyForm::Pem => text_response(StatusCode::OK, "application/x-pem-file", key.to_spki_pem()),
        KeyForm::Jwks => json_response(StatusCode::OK, &jwks),
        KeyForm::All => json_response(
            StatusCode::OK,
            &json!({
                "alg": "EdDSA",
                "kid": key.thumbprint(),
                "jwk": key.to_jwk(),
                "jwks": jwks,
                "pem": key.to_spki_pem(),
                "origin": gw.trail.origin(),
                "note_verifier_key": key.note_verifier_key(gw.trail.origin()),
                "previous_note_verifier_keys": gw
                    .audit_previous_keys
                    .iter()
                    .map(|k| k.note_verifier_key(gw.trail.origin()))
                    .collect::<Vec<_>>(),
            }),
        ),
    }
}

/// Which form of the public key to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyForm {
    All,
    Jwks,
    Pem,
}
