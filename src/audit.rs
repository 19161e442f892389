//! (placeholder for the lead's compile while the audit module is written on branch `authz`)
use std::collections::BTreeMap;

use crate::clock::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub outcome: String,
    pub transfer_id: Option<String>,
    pub subject: Option<String>,
    pub document_sha256: Option<String>,
    pub detail: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: u64,
    pub event: AuditEvent,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

pub fn chain(seq: u64, prev_hash: [u8; 32], event: AuditEvent) -> AuditEntry {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&prev_hash);
    ctx.update(format!("{seq}{event:?}").as_bytes());
    let mut hash = [0u8; 32];
    hash.copy_from_slice(ctx.finish().as_ref());
    AuditEntry {
        seq,
        event,
        prev_hash,
        hash,
    }
}
