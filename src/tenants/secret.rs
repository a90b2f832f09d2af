//! How secrets are stored in the config file.
//!
//! - Passwords (UsernameToken PasswordText, HTTP Basic): an Argon2id PHC
//!   string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`, the argon2
//!   crate's defaults, OWASP's minimum). Deliberately slow to guess from a
//!   leaked config; [`super::Tenants`] remembers a verified password for a
//!   short while so a busy client does not pay it on every call.
//! - API keys: `sha256:` and the hex SHA-256 of the key. Keys are long
//!   random strings (`soapgate hash-secret --api-key --generate`), so a
//!   fast unsalted hash is enough and lets a key be looked up by its hash.
//!
//! PasswordDigest cannot work from either: its digest mixes the clear
//! password with the nonce and timestamp of each call.

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};

/// The Argon2id PHC string of a password, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt =
        SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes()).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `hash` is a PHC string this version can verify.
pub fn check_password_hash(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash).map_err(|e| e.to_string())?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "unsupported algorithm {} (expected argon2id)",
            parsed.algorithm
        ));
    }
    // A PHC string may parse with parts missing; one that could never
    // verify a password is a configuration error, not a silent refusal.
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(
            "not a complete Argon2id hash (salt and hash required; use soapgate hash-secret)"
                .into(),
        );
    }
    argon2::Params::try_from(&parsed).map_err(|e| format!("invalid Argon2 parameters: {e}"))?;
    Ok(())
}

/// Whether `password` matches the PHC string `hash` (constant time in the
/// password, as the argon2 crate compares).
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// The Argon2id PHC string of a random password nobody knows, made with
/// the parameters (memory, iterations, lanes, version, output length) of
/// `like`, or the defaults when there is none: verifying a password
/// against it costs what verifying against `like` costs. Unknown users are
/// checked against it, so they take as long as known ones.
pub fn dummy_hash(like: Option<&str>) -> Result<String, String> {
    use argon2::{Algorithm, Params, Version};
    let salt =
        SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes()).map_err(|e| e.to_string())?;
    let password = uuid::Uuid::new_v4().to_string();
    let argon2 = match like {
        Some(like) => {
            let parsed = PasswordHash::new(like).map_err(|e| e.to_string())?;
            let params = Params::try_from(&parsed).map_err(|e| e.to_string())?;
            let version = parsed
                .version
                .map(Version::try_from)
                .transpose()
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            Argon2::new(Algorithm::Argon2id, version, params)
        }
        None => Argon2::default(),
    };
    argon2
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// `sha256:` and the lower-case hex SHA-256 of an API key.
pub fn hash_api_key(key: &str) -> String {
    format!("sha256:{}", hex(&Sha256::digest(key.as_bytes())))
}

/// Whether `hash` is `sha256:` and 64 hex digits.
pub fn check_api_key_hash(hash: &str) -> Result<(), String> {
    match hash.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(()),
        _ => Err("expected sha256: and 64 hex digits (soapgate hash-secret --api-key)".into()),
    }
}

/// A new random API key: 32 random bytes, URL-safe base64.
pub fn generate_api_key() -> String {
    use base64::Engine as _;
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    format!(
        "sg_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_round_trip_and_wrong_ones_fail() {
        let h = hash_password("s3cret").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(check_password_hash(&h).is_ok());
        for garbage in [
            "$argon2id$garbage",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
        ] {
            assert!(check_password_hash(garbage).is_err(), "{garbage}");
        }
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3cre", &h));
        assert!(!verify_password("s3cret", "not a hash"));
        assert_ne!(h, hash_password("s3cret").expect("hash"), "salted");
    }

    #[test]
    fn the_dummy_hash_has_the_parameters_of_the_real_ones() {
        let real = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(8 * 1024, 3, 1, None).expect("params"),
        )
        .hash_password(
            b"pw",
            &SaltString::encode_b64(b"0123456789abcdef").expect("salt"),
        )
        .expect("hash")
        .to_string();
        let dummy = dummy_hash(Some(&real)).expect("dummy");
        let params = |h: &str| {
            let p = PasswordHash::new(h).expect("phc");
            (p.algorithm.to_string(), p.version, p.params.to_string())
        };
        assert_eq!(params(&dummy), params(&real));
        assert!(!verify_password("pw", &dummy));
        let default = dummy_hash(None).expect("dummy");
        assert_eq!(params(&default), params(&hash_password("x").expect("hash")));
    }

    #[test]
    fn api_keys_hash_to_a_checkable_form() {
        let k = generate_api_key();
        let h = hash_api_key(&k);
        assert!(check_api_key_hash(&h).is_ok(), "{h}");
        assert_eq!(h, hash_api_key(&k));
        assert!(check_api_key_hash("sha256:zz").is_err());
    }
}
