//! What makes an import idempotent without keeping a secret: the request's
//! fingerprint, and device tokens derived rather than drawn (see the server's
//! `idempotency` module for the protocol).

use hmac::{KeyInit, Mac};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

/// What a retry must repeat to be answered from the kept request.
pub fn fingerprint(method: &str, path: &str, content_type: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [method.as_bytes(), path.as_bytes(), content_type.as_bytes()] {
        h.update(part);
        h.update([0]);
    }
    h.update(body);
    hex::encode(h.finalize())
}

/// The token of device `device` in the idempotent request `key` first made at
/// `at` with API token `api_token` (see the module documentation).
pub fn device_token(api_token: &str, key: &str, at: Timestamp, device: &str) -> String {
    let secret = Sha256::new().chain_update(b"updraft idempotent device tokens\0").chain_update(api_token).finalize();
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&secret).expect("HMAC takes any key length");
    mac.update(key.as_bytes());
    mac.update(&[0]);
    mac.update(at.as_microsecond().to_string().as_bytes());
    mac.update(&[0]);
    mac.update(device.as_bytes());
    format!("upd_d_{}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_tokens_depend_on_every_input() {
        let at = Timestamp::from_second(1_700_000_000).unwrap();
        let t = device_token("api", "k", at, "d1");
        assert!(t.starts_with("upd_d_") && t.len() == 6 + 64);
        assert_eq!(t, device_token("api", "k", at, "d1"));
        for other in [
            device_token("api2", "k", at, "d1"),
            device_token("api", "k2", at, "d1"),
            device_token("api", "k", at + jiff::SignedDuration::from_micros(1), "d1"),
            device_token("api", "k", at, "d2"),
        ] {
            assert_ne!(t, other);
        }
    }
}
