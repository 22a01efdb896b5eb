//! Opaque cursors for keyset paging: the ordering key of a page's last item,
//! as base64url JSON. Clients pass back what they were given; anything else
//! fails to decode and is a 400.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub fn encode<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).expect("a cursor key serializes"))
}

pub fn decode<K: DeserializeOwned>(text: &str) -> Option<K> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    serde_json::from_slice(&bytes).ok()
}
