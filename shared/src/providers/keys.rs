//! Checks of every provider's keys at cold start, after each provider's constructor accepted
//! their format: secrets and tokens of at least 16 bytes, none of callhook's public fixture
//! keys outside dev mode, and no key configured for two providers (or two Standard Webhooks
//! senders). Here rather than in each constructor, so that a provider's unit tests can still
//! check the providers' own SDK vectors, whose secrets are often short.

use sha2::{Digest, Sha256};

use crate::config::{ConfigError, Env, vars};
use crate::signing::standard_webhooks as sw;
use crate::signing::{self as verify};

/// How a variable's entries are keys.
#[derive(Clone, Copy)]
enum Form {
    /// The entry's bytes are the secret or token.
    Raw,
    /// Base64 of a 32-byte Ed25519 public key.
    Ed25519,
    /// A PEM RSA public key (Recho).
    RsaPem,
    /// `whsec_…` / `whpk_…`, optionally `sender=` first (Standard Webhooks).
    StandardWebhooks,
    /// The bytes, or `base64:<…>` decoded (Vapi).
    MaybeBase64,
    /// `api_key=secret` or `secret` (Vonage).
    Labelled,
}

/// Every variable that holds keys: (provider, variable, form).
const KEY_VARS: &[(&str, &str, Form)] = &[
    ("telnyx", vars::TELNYX_PUBLIC_KEYS, Form::Ed25519),
    ("bird", vars::BIRD_SIGNING_KEYS, Form::Raw),
    ("recho", vars::RECHO_BEARER_TOKENS, Form::Raw),
    ("recho", vars::RECHO_PUBLIC_KEYS_PEM, Form::RsaPem),
    ("miraiminds", vars::MIRAIMINDS_PATH_TOKENS, Form::Raw),
    (
        "stateset",
        vars::STATESET_WEBHOOK_SECRETS,
        Form::StandardWebhooks,
    ),
    (
        "standard",
        vars::STANDARD_WEBHOOK_SECRETS,
        Form::StandardWebhooks,
    ),
    ("retell", vars::RETELL_API_KEYS, Form::Raw),
    ("elevenlabs", vars::ELEVENLABS_WEBHOOK_SECRETS, Form::Raw),
    ("vapi", vars::VAPI_HMAC_SECRETS, Form::MaybeBase64),
    ("vapi", vars::VAPI_TOKENS, Form::Raw),
    ("twilio", vars::TWILIO_AUTH_TOKENS, Form::Raw),
    ("vonage", vars::VONAGE_SIGNATURE_SECRETS, Form::Labelled),
    ("plivo", vars::PLIVO_AUTH_TOKENS, Form::Raw),
];

/// One configured key: whose it is, where it is set, and its fingerprint (SHA-256 of what
/// kind of key it is and its bytes, so that two spellings of one key compare equal).
struct ConfiguredKey {
    var: &'static str,
    /// "secret" (HMAC secrets, bearer and path tokens), "ed25519" or "rsa".
    kind: &'static str,
    len: usize,
    /// The provider, or `standard#{sender}` for a named Standard Webhooks sender.
    owner: String,
    fingerprint: String,
}

fn fingerprint(kind: &str, bytes: &[u8]) -> String {
    hex::encode(Sha256::digest([kind.as_bytes(), b":", bytes].concat()))
}

/// The key of one entry, as (kind, bytes); `None` for an entry the provider's constructor
/// refuses anyway.
fn material(var: &'static str, form: Form, entry: &str) -> Option<(&'static str, Vec<u8>)> {
    match form {
        Form::Raw => Some(("secret", entry.as_bytes().to_vec())),
        Form::Ed25519 => verify::decode_b64(var, entry)
            .ok()
            .map(|bytes| ("ed25519", bytes)),
        Form::RsaPem => super::recho::parse_public_key(var, entry)
            .ok()
            .map(|key| ("rsa", key.pkcs1_der().to_vec())),
        Form::StandardWebhooks => {
            let (_, key) = sw::split_sender(entry);
            match key.strip_prefix("whpk_") {
                Some(public) => verify::decode_b64(var, public)
                    .ok()
                    .map(|bytes| ("ed25519", bytes)),
                None => sw::decode_hmac_secret(var, key)
                    .ok()
                    .map(|bytes| ("secret", bytes)),
            }
        }
        Form::MaybeBase64 => match entry.strip_prefix("base64:") {
            Some(encoded) => verify::decode_b64(var, encoded)
                .ok()
                .map(|bytes| ("secret", bytes)),
            None => Some(("secret", entry.as_bytes().to_vec())),
        },
        Form::Labelled => {
            let secret = entry.split_once('=').map_or(entry, |(_, s)| s).trim();
            Some(("secret", secret.as_bytes().to_vec()))
        }
    }
}

fn configured_keys(env: &Env) -> Vec<ConfiguredKey> {
    let mut keys = Vec::new();
    for &(provider, var, form) in KEY_VARS {
        for entry in env.list(var) {
            let Some((kind, bytes)) = material(var, form, entry) else {
                continue;
            };
            let owner = match form {
                Form::StandardWebhooks if provider == "standard" => {
                    let sender = sw::split_sender(entry).0.unwrap_or("default");
                    format!("{provider}#{sender}")
                }
                _ => provider.to_owned(),
            };
            keys.push(ConfiguredKey {
                var,
                kind,
                len: bytes.len(),
                owner,
                fingerprint: fingerprint(kind, &bytes),
            });
        }
    }
    keys
}

/// Fingerprints of every key callhook publishes: those the fixture seed derives for each
/// provider (`FIXTURE_SEED`) and the secrets of `events/env.json`. Anyone can sign with them.
pub const PUBLIC_FIXTURE_KEYS: &[&str] = &[
    "02ad5de3ec221c4f675a5230dcaa40acf746db7dd4bbab47e1aadde766cec428",
    "20c093b5ba6c0376e12cb5a58d763a42c3976e5164520d5436d113223868514d",
    "23f259df3f595db807a9edb969417dde32762e5ec442dbe83b723cff0b5744b4",
    "2ec8fd70c9663f567ea3600a286ae3db0f4209b676ffbdc4b8fba7268a4064ac",
    "43d94a05a91513601cb3bbfb1b5eab84063d1e4766c1b1c198d444545c3fb150",
    "616c17187b092dc10bdcf35ba7c35dff20db81e81bab16ba67f3ec35726146ba",
    "694f66b32f6bc681b7de5c8f800b19d0c7156cb21c2472243883313c97d79b29",
    "818c00e879865e93bb074880fc2324d9462a653bce0f29d11e09a598abafc67b",
    "b2a3f193b9edd271d4cd4fc7a24391e0bafcbc3b87fb80a5f3d991a7897c4d46",
    "b369afb05ff9d0c8271ab45c966bfd140d8ab27a285a35de0547d7615499725a",
    "c989ea48872a311952c63a3c1283016138d558e740d583e07cb0f872816868fe",
    "dae891a1fb990835de53e75f818091003271112647f514c47412e46155ad6826",
    "e99ff6d5f974fe2c292567b4a9a061a3bb07cc929a462c5660a3d5ee9011cfed",
];

/// True when `kind`/`bytes` is one of the public fixture keys (`CRM_SIGNING_SECRET` uses it).
pub fn is_public_fixture_secret(bytes: &[u8]) -> bool {
    PUBLIC_FIXTURE_KEYS.contains(&fingerprint("secret", bytes).as_str())
}

/// The error for a public fixture key in `var`.
pub fn fixture_key_error(var: &str) -> ConfigError {
    ConfigError::invalid(
        var,
        "a key is one of callhook's public fixture keys (events/env.json), which anyone can sign \
         with; it is accepted only with CALLHOOK_DEV=true, for local development and tests",
    )
}

/// The checks across providers, run after every provider's constructor accepted its keys.
pub fn check(env: &Env) -> Result<(), ConfigError> {
    let dev = env.dev_mode()?;
    let keys = configured_keys(env);
    for (i, key) in keys.iter().enumerate() {
        if key.kind == "secret" {
            verify::check_secret_len(key.var, "a secret or token", &vec![0; key.len])?;
        }
        if !dev && PUBLIC_FIXTURE_KEYS.contains(&key.fingerprint.as_str()) {
            return Err(fixture_key_error(key.var));
        }
        if let Some(first) = keys[..i]
            .iter()
            .find(|k| k.fingerprint == key.fingerprint && k.owner != key.owner)
        {
            let problem = if first.var == key.var {
                format!(
                    "a key is listed for two senders ({} and {})",
                    first.owner.trim_start_matches("standard#"),
                    key.owner.trim_start_matches("standard#")
                )
            } else {
                format!(
                    "a key is also configured in {} (one key, one provider: a sender holding it \
                     could post as either)",
                    first.var
                )
            };
            return Err(ConfigError::invalid(key.var, problem));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{CONSTRUCTORS, FIXTURE_SEED, Providers};

    /// events/env.json: every value of a key variable, and CRM_SIGNING_SECRET.
    fn env_json_fingerprints() -> Vec<String> {
        let env: serde_json::Value =
            serde_json::from_str(include_str!("../../../events/env.json")).unwrap();
        let mut prints = Vec::new();
        for function in env.as_object().unwrap().values() {
            let pairs = function
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()));
            let env = Env::from_pairs(pairs);
            prints.extend(configured_keys(&env).into_iter().map(|k| k.fingerprint));
            if let Some(secret) = env.get(vars::CRM_SIGNING_SECRET) {
                let bytes = sw::decode_hmac_secret(vars::CRM_SIGNING_SECRET, secret).unwrap();
                prints.push(fingerprint("secret", &bytes));
            }
        }
        prints
    }

    fn fixture_seed_fingerprints() -> Vec<String> {
        let mut prints = Vec::new();
        for entry in CONSTRUCTORS {
            let env = Env::from_pairs((entry.dev_signer)(&FIXTURE_SEED).verifier_env());
            prints.extend(configured_keys(&env).into_iter().map(|k| k.fingerprint));
        }
        prints
    }

    #[test]
    fn every_public_fixture_key_is_listed() {
        let mut expected = fixture_seed_fingerprints();
        expected.extend(env_json_fingerprints());
        expected.sort();
        expected.dedup();
        let mut listed: Vec<String> = PUBLIC_FIXTURE_KEYS.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(
            listed, expected,
            "PUBLIC_FIXTURE_KEYS must be exactly these"
        );
    }

    fn dev(mut env: Env) -> Env {
        env.set(vars::CALLHOOK_DEV, "true");
        env
    }

    #[test]
    fn fixture_keys_are_refused_outside_dev_mode() {
        for entry in CONSTRUCTORS {
            let verifier_env = (entry.dev_signer)(&FIXTURE_SEED).verifier_env();
            let env = Env::from_pairs(verifier_env.clone());
            let err = Providers::from_env(&env)
                .err()
                .unwrap_or_else(|| panic!("{}: fixture keys accepted", entry.name))
                .to_string();
            assert!(
                verifier_env.iter().any(|(var, _)| err.starts_with(var)),
                "{}: {err}",
                entry.name
            );
            assert!(err.contains("CALLHOOK_DEV=true"), "{err}");
            let providers = Providers::from_env(&dev(env)).unwrap();
            assert!(providers.get(entry.name).is_some(), "{}", entry.name);
        }
        // Another spelling of the same key is the same key.
        let standard = Env::from_pairs([(
            vars::STANDARD_WEBHOOK_SECRETS,
            "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=",
        )]);
        assert!(Providers::from_env(&standard).is_err());
        let bad = Env::from_pairs([(vars::CALLHOOK_DEV, "yes")]);
        assert!(
            Providers::from_env(&bad)
                .err()
                .unwrap()
                .to_string()
                .starts_with("CALLHOOK_DEV is invalid")
        );
    }

    #[test]
    fn a_key_configured_for_two_providers_is_refused() {
        let secret = sw::encode_secret(&[0x42; 32]);
        let env = Env::from_pairs([
            (vars::STATESET_WEBHOOK_SECRETS, secret.clone()),
            (vars::STANDARD_WEBHOOK_SECRETS, secret.clone()),
        ]);
        let err = Providers::from_env(&env).err().unwrap().to_string();
        assert!(
            err.starts_with("STANDARD_WEBHOOK_SECRETS is invalid: a key is also configured in STATESET_WEBHOOK_SECRETS"),
            "{err}"
        );
        assert!(!err.contains(&secret[6..]), "{err}");

        let public = verify::encode_b64(
            ed25519_dalek::SigningKey::from_bytes(&[9; 32])
                .verifying_key()
                .as_bytes(),
        );
        let env = Env::from_pairs([
            (vars::TELNYX_PUBLIC_KEYS, public.clone()),
            (vars::STANDARD_WEBHOOK_SECRETS, format!("whpk_{public}")),
        ]);
        let err = Providers::from_env(&env).err().unwrap().to_string();
        assert!(
            err.contains("also configured in TELNYX_PUBLIC_KEYS"),
            "{err}"
        );

        let token = "the-same-token-for-both";
        let env = Env::from_pairs([
            (vars::TWILIO_AUTH_TOKENS, token),
            (vars::PLIVO_AUTH_TOKENS, token),
        ]);
        let err = Providers::from_env(&env).err().unwrap().to_string();
        assert!(err.starts_with("PLIVO_AUTH_TOKENS is invalid"), "{err}");

        // The same key twice for one provider (a rotation typed twice) is harmless.
        let env = Env::from_pairs([(vars::TWILIO_AUTH_TOKENS, format!("{token},{token}"))]);
        assert!(Providers::from_env(&env).is_ok());
    }

    #[test]
    fn short_secrets_are_refused_naming_the_variable() {
        let short = "fifteen-bytes-x";
        assert_eq!(short.len(), 15);
        let short_whsec = sw::encode_secret(short.as_bytes());
        let cases: Vec<Vec<(&str, String)>> = vec![
            vec![(vars::BIRD_SIGNING_KEYS, short.into())],
            vec![
                (vars::RECHO_AUTH, "bearer".into()),
                (vars::RECHO_BEARER_TOKENS, short.into()),
            ],
            vec![(vars::MIRAIMINDS_PATH_TOKENS, short.into())],
            vec![(vars::STATESET_WEBHOOK_SECRETS, short_whsec.clone())],
            vec![(vars::STANDARD_WEBHOOK_SECRETS, short_whsec.clone())],
            vec![(vars::RETELL_API_KEYS, short.into())],
            vec![(vars::ELEVENLABS_WEBHOOK_SECRETS, short.into())],
            vec![
                (vars::VAPI_AUTH, "hmac".into()),
                (vars::VAPI_HMAC_SECRETS, short.into()),
            ],
            vec![
                (vars::VAPI_AUTH, "hmac".into()),
                (
                    vars::VAPI_HMAC_SECRETS,
                    format!("base64:{}", verify::encode_b64(short.as_bytes())),
                ),
            ],
            vec![
                (vars::VAPI_AUTH, "token".into()),
                (vars::VAPI_TOKENS, short.into()),
            ],
            vec![(vars::TWILIO_AUTH_TOKENS, short.into())],
            vec![(vars::VONAGE_SIGNATURE_SECRETS, short.into())],
            vec![(vars::VONAGE_SIGNATURE_SECRETS, format!("0123abcd={short}"))],
            vec![(vars::PLIVO_AUTH_TOKENS, short.into())],
        ];
        for pairs in cases {
            let var = pairs.last().unwrap().0;
            let err = Providers::from_env(&Env::from_pairs(pairs.clone()))
                .err()
                .unwrap_or_else(|| panic!("{var}: a 15-byte secret was accepted"))
                .to_string();
            assert!(err.starts_with(&format!("{var} is invalid")), "{err}");
            assert!(!err.contains(short), "{err}");
            // Sixteen bytes pass.
            let sixteen: Vec<(&str, String)> = pairs
                .iter()
                .map(|(k, v)| {
                    (
                        *k,
                        v.replace(short, "sixteen-bytes-ok")
                            .replace(&short_whsec, &sw::encode_secret(b"sixteen-bytes-ok")),
                    )
                })
                .collect();
            let base64_sixteen: Vec<(&str, String)> = sixteen
                .iter()
                .map(|(k, v)| {
                    (
                        *k,
                        v.replace(
                            &verify::encode_b64(short.as_bytes()),
                            &verify::encode_b64(b"sixteen-bytes-ok"),
                        ),
                    )
                })
                .collect();
            assert!(
                Providers::from_env(&Env::from_pairs(base64_sixteen)).is_ok(),
                "{var}: 16 bytes refused"
            );
        }
    }
}
