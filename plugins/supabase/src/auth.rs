//! Requests as a user, the way PostgREST runs them: the claims (given, or
//! read from a verified HS256 JWT) and the role they name become the
//! transaction-local settings `request.jwt.claims` and `role`, which the
//! engine applies with bound parameters in the request's own transaction,
//! so Supabase's `auth.uid()`, `auth.role()`, `auth.jwt()` and the
//! project's row-level security policies see that user.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use strata_plugin::{ErrorKind, Extensions, PluginError, PluginResult, ext_keys as keys};
use strata_postgres_engine::{LocalSettings, RequestScope};

use crate::config::SupabaseConfig;

/// How this backend turns a request's user into settings.
pub(crate) struct Auth {
    /// The HS256 key (never printed: this type has no `Debug`).
    jwt_secret: Option<Vec<u8>>,
    service_role: bool,
    roles: Vec<String>,
    anon_role: String,
}

impl Auth {
    pub(crate) fn new(cfg: &SupabaseConfig) -> Auth {
        Auth {
            jwt_secret: cfg.jwt_secret.as_ref().map(|s| s.as_bytes().to_vec()),
            service_role: cfg.service_role,
            roles: cfg.roles.clone(),
            anon_role: cfg.anon_role.clone(),
        }
    }

    /// The claims of a request: verified from its token, or as given.
    fn claims(&self, ext: &Extensions) -> PluginResult<Option<Map<String, Value>>> {
        if let Some(token) = ext.get(keys::AUTH_JWT) {
            let token: String = serde_json::from_str(token).map_err(|_| {
                PluginError::invalid_input("the request's JWT is not a JSON string")
            })?;
            let Some(secret) = &self.jwt_secret else {
                return Err(PluginError::new(
                    ErrorKind::InvalidInput,
                    "a JWT was given but this backend has no `jwt_secret` to verify it with",
                ));
            };
            return verify_hs256(&token, secret, now()).map(Some);
        }
        let Some(claims) = ext.get(keys::AUTH_CLAIMS) else {
            return Ok(None);
        };
        if self.jwt_secret.is_some() {
            return Err(PluginError::new(
                ErrorKind::InvalidInput,
                "this backend verifies users' JWTs (`jwt_secret` is set): run as a user with a \
                 signed token (as_user_jwt), not with bare claims",
            ));
        }
        match serde_json::from_str(claims) {
            Ok(Value::Object(m)) => Ok(Some(m)),
            _ => Err(PluginError::invalid_input(
                "the request's claims are not a JSON object",
            )),
        }
    }
}

impl RequestScope for Auth {
    fn settings(&self, ext: &Extensions) -> PluginResult<LocalSettings> {
        let Some(claims) = self.claims(ext)? else {
            return Ok(Vec::new());
        };
        let role = match claims.get("role") {
            None => self.anon_role.clone(),
            Some(Value::String(r)) => r.clone(),
            Some(_) => {
                return Err(PluginError::invalid_input(
                    "the claims' `role` is not a string",
                ));
            }
        };
        let allowed = if role == "service_role" {
            self.service_role
        } else {
            self.roles.contains(&role)
        };
        if !allowed {
            return Err(PluginError::new(
                ErrorKind::InvalidInput,
                if role == "service_role" {
                    "role `service_role` (which bypasses row-level security) is not allowed on \
                     this backend: set `service_role = true` in its config to allow it"
                        .to_string()
                } else {
                    format!(
                        "role {role:?} is not one this backend runs requests as (config `roles`: {:?})",
                        self.roles
                    )
                },
            ));
        }
        // Re-serialised from the parsed object: what the server reads is
        // exactly one JSON object, whatever the text it came from.
        Ok(vec![
            (
                "request.jwt.claims".into(),
                Value::Object(claims).to_string(),
            ),
            ("role".into(), role),
        ])
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn malformed(what: &str) -> PluginError {
    PluginError::new(
        ErrorKind::InvalidInput,
        format!("the JWT is malformed: {what}"),
    )
}

/// Verifies a compact HS256 JWT against `secret` at time `now` (seconds)
/// and returns its claims. Errors say which check failed: malformed,
/// another algorithm, bad signature, expired, not yet valid.
pub(crate) fn verify_hs256(
    token: &str,
    secret: &[u8],
    now: u64,
) -> PluginResult<Map<String, Value>> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("not three dot-separated parts"));
    };
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| malformed(&format!("its {what} is not base64url")))
    };
    let header: Value = serde_json::from_slice(&decode(h, "header")?)
        .map_err(|_| malformed("its header is not JSON"))?;
    match header.get("alg").and_then(Value::as_str) {
        Some("HS256") => {}
        other => {
            return Err(PluginError::new(
                ErrorKind::InvalidInput,
                format!(
                    "the JWT is signed with {}, this backend accepts HS256 only",
                    other.map_or("no algorithm".to_string(), |a| format!("{a:?}"))
                ),
            ));
        }
    }
    let sig = decode(sig, "signature")?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .map_err(|_| PluginError::internal("HMAC key"))?;
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    // Constant-time comparison.
    mac.verify_slice(&sig).map_err(|_| {
        PluginError::new(
            ErrorKind::InvalidInput,
            "the JWT's signature does not verify with this backend's jwt_secret",
        )
    })?;
    let claims = match serde_json::from_slice(&decode(p, "payload")?) {
        Ok(Value::Object(m)) => m,
        _ => return Err(malformed("its payload is not a JSON object")),
    };
    let time = |k: &str| -> PluginResult<Option<u64>> {
        match claims.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|t| *t >= 0.0)
                .map(|t| Some(t as u64))
                .ok_or_else(|| malformed(&format!("its `{k}` is not a number of seconds"))),
        }
    };
    if let Some(exp) = time("exp")?
        && now >= exp
    {
        return Err(PluginError::new(
            ErrorKind::InvalidInput,
            format!("the JWT has expired ({} s ago)", now - exp),
        ));
    }
    if let Some(nbf) = time("nbf")?
        && now < nbf
    {
        return Err(PluginError::new(
            ErrorKind::InvalidInput,
            "the JWT is not valid yet (its `nbf` is in the future)",
        ));
    }
    Ok(claims)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Signs `claims` with `secret` (HS256), as a Supabase project would.
    pub(crate) fn sign(claims: &Value, secret: &[u8]) -> String {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
        mac.update(format!("{h}.{p}").as_bytes());
        let s = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{h}.{p}.{s}")
    }

    #[test]
    fn verifies_and_says_why_not() {
        let secret = b"super-secret-jwt-token-with-at-least-32-characters";
        let good = sign(
            &serde_json::json!({"sub": "u1", "role": "authenticated", "exp": 2000}),
            secret,
        );
        assert_eq!(verify_hs256(&good, secret, 1000).unwrap()["sub"], "u1");
        let e = verify_hs256(&good, secret, 2000).unwrap_err();
        assert!(e.message().contains("expired"), "{e}");
        let e = verify_hs256(&good, b"another secret", 1000).unwrap_err();
        assert!(e.message().contains("signature"), "{e}");
        let e = verify_hs256("abc.def", secret, 1000).unwrap_err();
        assert!(e.message().contains("malformed"), "{e}");
        // Claims changed after signing: the signature no longer matches.
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(r#"{"sub":"u2","role":"service_role"}"#);
        parts[1] = &forged;
        let e = verify_hs256(&parts.join("."), secret, 1000).unwrap_err();
        assert!(e.message().contains("signature"), "{e}");
        // alg = none is refused.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(br#"{"sub":"u1"}"#)
        );
        let e = verify_hs256(&none, secret, 1000).unwrap_err();
        assert!(e.message().contains("HS256"), "{e}");
    }
}
