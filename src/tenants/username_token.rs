//! The WS-Security UsernameToken rules (as WSS4J applies them): `Created`
//! no older than `created_max_age_secs` and no more than
//! `created_max_future_secs` ahead; a nonce seen within that window is a
//! replay; PasswordDigest is `Base64(SHA-1(nonce + created + password))`
//! and needs both the nonce and `Created`.

use std::time::Duration;

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::soap::wsse::{Password, UsernameToken};

/// Why a token does not check out (for the log, never the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("unknown user")]
    UnknownUser,
    #[error("no password")]
    NoPassword,
    #[error("wrong password")]
    WrongPassword,
    #[error("PasswordDigest needs a Nonce and Created")]
    DigestWithoutNonce,
    #[error("PasswordDigest is not accepted for this user (no clear password configured)")]
    DigestNotConfigured,
    #[error("Created {0:?} is not an xs:dateTime")]
    BadCreated(String),
    #[error("Created is {0} s old (stale)")]
    Stale(i64),
    #[error("Created is {0} s in the future")]
    Future(i64),
    #[error("nonce replayed")]
    Replay,
}

/// Checks `created` against `now`: not older than `max_age`, not further
/// ahead than `max_future`.
pub fn check_created(
    created: &str,
    now: OffsetDateTime,
    max_age: Duration,
    max_future: Duration,
) -> Result<(), TokenError> {
    let at = OffsetDateTime::parse(created, &Rfc3339)
        .map_err(|_| TokenError::BadCreated(created.to_string()))?;
    let age = now - at;
    if age > max_age {
        return Err(TokenError::Stale(age.whole_seconds()));
    }
    if -age > max_future {
        return Err(TokenError::Future((-age).whole_seconds()));
    }
    Ok(())
}

/// `Base64(SHA-1(nonce + created + password))`, raw: the digest a client
/// computes (and tests compute to play one).
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> Vec<u8> {
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(created.as_bytes());
    h.update(password.as_bytes());
    h.finalize().to_vec()
}

/// Whether a PasswordDigest token matches the clear password.
pub fn digest_matches(token: &UsernameToken, clear: &str) -> Result<(), TokenError> {
    let (Some(Password::Digest(sent)), Some(nonce), Some(created)) =
        (&token.password, &token.nonce, &token.created)
    else {
        return Err(TokenError::DigestWithoutNonce);
    };
    let expected = password_digest(nonce, created, clear);
    if bool::from(expected.ct_eq(sent)) {
        Ok(())
    } else {
        Err(TokenError::WrongPassword)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGE: Duration = Duration::from_secs(300);
    const AHEAD: Duration = Duration::from_secs(60);

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).expect("time")
    }

    #[test]
    fn created_must_be_within_the_window() {
        let now = at("2026-01-01T12:00:00Z");
        assert!(check_created("2026-01-01T11:55:00Z", now, AGE, AHEAD).is_ok());
        assert!(check_created("2026-01-01T12:01:00.000Z", now, AGE, AHEAD).is_ok());
        assert!(check_created("2026-01-01T13:00:30+01:00", now, AGE, AHEAD).is_ok());
        assert_eq!(
            check_created("2026-01-01T11:54:59Z", now, AGE, AHEAD),
            Err(TokenError::Stale(301))
        );
        assert_eq!(
            check_created("2026-01-01T12:01:01Z", now, AGE, AHEAD),
            Err(TokenError::Future(61))
        );
        assert!(matches!(
            check_created("yesterday", now, AGE, AHEAD),
            Err(TokenError::BadCreated(_))
        ));
    }

    #[test]
    fn the_digest_is_the_profile_s_formula() {
        // The example of the UsernameToken Profile 1.0, section 3.1.
        let nonce = [0u8, 1, 2, 3];
        let created = "2003-07-16T01:24:32Z";
        let token = UsernameToken {
            username: "u".into(),
            password: Some(Password::Digest(password_digest(&nonce, created, "pw"))),
            nonce: Some(nonce.to_vec()),
            created: Some(created.into()),
        };
        assert_eq!(digest_matches(&token, "pw"), Ok(()));
        assert_eq!(
            digest_matches(&token, "pw2"),
            Err(TokenError::WrongPassword)
        );
        let no_nonce = UsernameToken {
            nonce: None,
            ..token
        };
        assert_eq!(
            digest_matches(&no_nonce, "pw"),
            Err(TokenError::DigestWithoutNonce)
        );
    }
}
