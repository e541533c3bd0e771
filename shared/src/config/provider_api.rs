//! Credentials and base URLs of the providers' fetch-one-call APIs (docs/provider-apis.md), and
//! the client's timeout and attempts. A provider whose credentials are unset has no lookup (not
//! an error); a provider with some of them set must have all of them. Errors name the variable,
//! never its value, and every type that holds a credential prints `<redacted>` in `Debug`.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use super::{ConfigError, Env, vars};

/// PROVIDER_API_TIMEOUT_SECS's default: one attempt, connecting included.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
/// PROVIDER_API_ATTEMPTS's default: the first try and two retries.
pub const DEFAULT_ATTEMPTS: u64 = 3;
/// The shortest RSA key accepted for the Vonage application.
const MIN_RSA_BITS: usize = 2048;

pub const TELNYX_DEFAULT_URL: &str = "https://api.telnyx.com";
pub const TWILIO_DEFAULT_URL: &str = "https://api.twilio.com";
pub const VONAGE_DEFAULT_URL: &str = "https://api.nexmo.com";
pub const PLIVO_DEFAULT_URL: &str = "https://api.plivo.com";
pub const RETELL_DEFAULT_URL: &str = "https://api.retellai.com";
pub const ELEVENLABS_DEFAULT_URL: &str = "https://api.elevenlabs.io";
pub const VAPI_DEFAULT_URL: &str = "https://api.vapi.ai";
pub const BIRD_DEFAULT_URL: &str = "https://api.bird.com";

/// A credential: only [`Secret::expose`] reads it, and `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// An API that takes one key (Telnyx, Retell, ElevenLabs, Vapi).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyApi {
    pub key: Secret,
    pub base_url: String,
}

/// Twilio: HTTP Basic with `username:password`, under the account's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioApi {
    /// `AC…`: names the account in every URL.
    pub account_sid: String,
    /// The API key's SID (`SK…`) when TWILIO_API_KEY_SID is set, else the account SID.
    pub username: String,
    /// The API key's secret, or the account's Auth Token.
    pub password: Secret,
    pub base_url: String,
}

/// Vonage: a JWT signed with the application's private key for every request.
#[derive(Debug, Clone)]
pub struct VonageApi {
    pub application_id: String,
    pub private_key: RsaSigningKey,
    pub base_url: String,
}

/// Plivo: HTTP Basic `auth_id:auth_token`, under the account's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlivoApi {
    pub auth_id: String,
    pub token: Secret,
    pub base_url: String,
}

/// Bird: an access key, and the workspace and channels its call URLs name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirdApi {
    pub key: Secret,
    pub workspace_id: String,
    /// Tried in order: a call key alone does not say which channel carried the call.
    pub channel_ids: Vec<String>,
    pub base_url: String,
}

/// An RSA private key that signs RS256 (PKCS#1 v1.5, SHA-256).
#[derive(Clone)]
pub struct RsaSigningKey(Arc<RsaKeyPair>);

impl RsaSigningKey {
    /// Parses a PEM private key, PKCS#8 (`BEGIN PRIVATE KEY`, as Vonage hands it out) or
    /// PKCS#1 (`BEGIN RSA PRIVATE KEY`). Line breaks may be real or written as a literal `\n`
    /// (one line in an env file).
    pub fn from_pem(var: &str, pem: &str) -> Result<Self, ConfigError> {
        let text = pem.replace("\\r", "").replace("\\n", "\n");
        let invalid = |problem: &str| ConfigError::invalid(var, problem);
        let der = PrivateKeyDer::from_pem_slice(text.trim().as_bytes())
            .map_err(|_| invalid("expected a PEM private key (-----BEGIN PRIVATE KEY-----)"))?;
        let pair = match &der {
            PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
            _ => return Err(invalid("expected an RSA private key")),
        }
        .map_err(|_| invalid("the PEM block is not a valid RSA private key"))?;
        if pair.public_modulus_len() * 8 < MIN_RSA_BITS {
            return Err(invalid("the RSA key is shorter than 2048 bits"));
        }
        Ok(RsaSigningKey(Arc::new(pair)))
    }

    /// The RS256 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> {
        let mut signature = vec![0; self.0.public_modulus_len()];
        self.0.sign(
            &RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            message,
            &mut signature,
        )?;
        Ok(signature)
    }
}

impl fmt::Debug for RsaSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RsaSigningKey(<redacted>)")
    }
}

/// Every provider API's configuration, read once at cold start.
#[derive(Debug, Clone)]
pub struct ProviderApiConfig {
    /// One attempt's limit, connecting and reading the answer included.
    pub timeout_secs: u64,
    /// Tries per lookup, the first included (429, 5xx and network failures are retried).
    pub attempts: u32,
    pub telnyx: Option<KeyApi>,
    pub twilio: Option<TwilioApi>,
    pub vonage: Option<VonageApi>,
    pub plivo: Option<PlivoApi>,
    pub retell: Option<KeyApi>,
    pub elevenlabs: Option<KeyApi>,
    pub vapi: Option<KeyApi>,
    pub bird: Option<BirdApi>,
}

impl ProviderApiConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(ProviderApiConfig {
            timeout_secs: env.bounded(
                vars::PROVIDER_API_TIMEOUT_SECS,
                DEFAULT_TIMEOUT_SECS,
                1,
                60,
            )?,
            attempts: env.bounded(vars::PROVIDER_API_ATTEMPTS, DEFAULT_ATTEMPTS, 1, 5)? as u32,
            telnyx: key_api(
                env,
                vars::TELNYX_API_KEY,
                vars::TELNYX_API_URL,
                TELNYX_DEFAULT_URL,
            )?,
            twilio: twilio(env)?,
            vonage: vonage(env)?,
            plivo: plivo(env)?,
            retell: key_api(
                env,
                vars::RETELL_API_KEY,
                vars::RETELL_API_URL,
                RETELL_DEFAULT_URL,
            )?,
            elevenlabs: key_api(
                env,
                vars::ELEVENLABS_API_KEY,
                vars::ELEVENLABS_API_URL,
                ELEVENLABS_DEFAULT_URL,
            )?,
            vapi: key_api(
                env,
                vars::VAPI_API_KEY,
                vars::VAPI_API_URL,
                VAPI_DEFAULT_URL,
            )?,
            bird: bird(env)?,
        })
    }

    /// The providers with API credentials, in a fixed order.
    pub fn configured(&self) -> Vec<&'static str> {
        [
            ("telnyx", self.telnyx.is_some()),
            ("twilio", self.twilio.is_some()),
            ("vonage", self.vonage.is_some()),
            ("plivo", self.plivo.is_some()),
            ("retell", self.retell.is_some()),
            ("elevenlabs", self.elevenlabs.is_some()),
            ("vapi", self.vapi.is_some()),
            ("bird", self.bird.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect()
    }
}

/// A credential: printable ASCII without spaces (it goes into a header).
fn secret(env: &Env, var: &str) -> Result<Option<Secret>, ConfigError> {
    env.get(var)
        .map(|v| {
            if v.bytes().all(|b| b.is_ascii_graphic()) {
                Ok(Secret::new(v))
            } else {
                Err(ConfigError::invalid(
                    var,
                    "must be printable ASCII without spaces",
                ))
            }
        })
        .transpose()
}

/// An id that goes into a URL path or a Basic username: letters, digits, `-` and `_`.
fn identifier(env: &Env, var: &str) -> Result<Option<String>, ConfigError> {
    env.get(var).map(|v| check_identifier(var, v)).transpose()
}

fn check_identifier(var: &str, value: &str) -> Result<String, ConfigError> {
    if value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(value.to_owned())
    } else {
        Err(ConfigError::invalid(
            var,
            "may hold only letters, digits, '-' and '_'",
        ))
    }
}

/// `{PROVIDER}_API_URL`, or the provider's own base URL. `https://`, or `http://` to a loopback
/// host only (a local fake API: credentials never cross a network in clear). No query, fragment
/// or user info; a trailing `/` is dropped.
pub fn base_url(env: &Env, var: &str, default: &str) -> Result<String, ConfigError> {
    let Some(url) = env.get(var) else {
        return Ok(default.to_owned());
    };
    let invalid = |problem: &str| ConfigError::invalid(var, problem);
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid("expected a URL such as https://api.example.com"))?;
    if url.contains(['?', '#', '@']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "must be a base URL without query, fragment, credentials or spaces",
        ));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next(),
        None => authority.split(':').next(),
    };
    if host.is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    match scheme {
        "https" => {}
        "http" if super::dispatch::is_loopback(url) => {}
        "http" => {
            return Err(invalid(
                "must be https:// (http:// only to 127.0.0.1, ::1 or localhost)",
            ));
        }
        _ => return Err(invalid("must be https://")),
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn key_api(
    env: &Env,
    key_var: &str,
    url_var: &str,
    default: &str,
) -> Result<Option<KeyApi>, ConfigError> {
    let base_url = base_url(env, url_var, default)?;
    Ok(secret(env, key_var)?.map(|key| KeyApi { key, base_url }))
}

/// The variables of one provider: all unset is no lookup, some set is a missing one.
fn all_or_none<const N: usize>(env: &Env, vars: [&str; N]) -> Result<bool, ConfigError> {
    let set: Vec<bool> = vars.iter().map(|v| env.get(v).is_some()).collect();
    if set.iter().all(|s| !s) {
        return Ok(false);
    }
    match vars.iter().zip(&set).find(|(_, set)| !**set) {
        Some((var, _)) => Err(ConfigError::missing(var)),
        None => Ok(true),
    }
}

fn twilio(env: &Env) -> Result<Option<TwilioApi>, ConfigError> {
    let base_url = base_url(env, vars::TWILIO_API_URL, TWILIO_DEFAULT_URL)?;
    let key_sid = identifier(env, vars::TWILIO_API_KEY_SID)?;
    if !all_or_none(env, [vars::TWILIO_ACCOUNT_SID, vars::TWILIO_API_KEY])? {
        if key_sid.is_some() {
            return Err(ConfigError::missing(vars::TWILIO_ACCOUNT_SID));
        }
        return Ok(None);
    }
    let account_sid = identifier(env, vars::TWILIO_ACCOUNT_SID)?.unwrap_or_default();
    if !account_sid.starts_with("AC") {
        return Err(ConfigError::invalid(
            vars::TWILIO_ACCOUNT_SID,
            "expected the account SID (AC…)",
        ));
    }
    if key_sid.as_deref().is_some_and(|s| !s.starts_with("SK")) {
        return Err(ConfigError::invalid(
            vars::TWILIO_API_KEY_SID,
            "expected an API key SID (SK…)",
        ));
    }
    Ok(Some(TwilioApi {
        username: key_sid.unwrap_or_else(|| account_sid.clone()),
        account_sid,
        password: secret(env, vars::TWILIO_API_KEY)?.unwrap_or_else(|| Secret::new("")),
        base_url,
    }))
}

fn vonage(env: &Env) -> Result<Option<VonageApi>, ConfigError> {
    let base_url = base_url(env, vars::VONAGE_API_URL, VONAGE_DEFAULT_URL)?;
    if !all_or_none(env, [vars::VONAGE_APPLICATION_ID, vars::VONAGE_PRIVATE_KEY])? {
        return Ok(None);
    }
    let application_id = identifier(env, vars::VONAGE_APPLICATION_ID)?.unwrap_or_default();
    let private_key = RsaSigningKey::from_pem(
        vars::VONAGE_PRIVATE_KEY,
        env.require(vars::VONAGE_PRIVATE_KEY)?,
    )?;
    Ok(Some(VonageApi {
        application_id,
        private_key,
        base_url,
    }))
}

fn plivo(env: &Env) -> Result<Option<PlivoApi>, ConfigError> {
    let base_url = base_url(env, vars::PLIVO_API_URL, PLIVO_DEFAULT_URL)?;
    if !all_or_none(env, [vars::PLIVO_AUTH_ID, vars::PLIVO_API_TOKEN])? {
        return Ok(None);
    }
    Ok(Some(PlivoApi {
        auth_id: identifier(env, vars::PLIVO_AUTH_ID)?.unwrap_or_default(),
        token: secret(env, vars::PLIVO_API_TOKEN)?.unwrap_or_else(|| Secret::new("")),
        base_url,
    }))
}

fn bird(env: &Env) -> Result<Option<BirdApi>, ConfigError> {
    let base_url = base_url(env, vars::BIRD_API_URL, BIRD_DEFAULT_URL)?;
    if !all_or_none(
        env,
        [
            vars::BIRD_API_KEY,
            vars::BIRD_WORKSPACE_ID,
            vars::BIRD_CHANNEL_IDS,
        ],
    )? {
        return Ok(None);
    }
    let channel_ids = env
        .list(vars::BIRD_CHANNEL_IDS)
        .into_iter()
        .map(|c| check_identifier(vars::BIRD_CHANNEL_IDS, c))
        .collect::<Result<Vec<_>, _>>()?;
    if channel_ids.is_empty() {
        return Err(ConfigError::missing(vars::BIRD_CHANNEL_IDS));
    }
    Ok(Some(BirdApi {
        key: secret(env, vars::BIRD_API_KEY)?.unwrap_or_else(|| Secret::new("")),
        workspace_id: identifier(env, vars::BIRD_WORKSPACE_ID)?.unwrap_or_default(),
        channel_ids,
        base_url,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fake_api::rsa_private_key_pem as test_pem;

    #[test]
    fn nothing_set_means_no_lookups() {
        let config = ProviderApiConfig::from_env(&Env::default()).unwrap();
        assert!(config.configured().is_empty());
        assert_eq!(config.timeout_secs, DEFAULT_TIMEOUT_SECS);
        assert_eq!(config.attempts, 3);
    }

    #[test]
    fn every_provider_configures_from_its_variables() {
        let pem = test_pem().replace('\n', "\\n");
        let env = Env::from_pairs([
            (vars::TELNYX_API_KEY, "KEYtelnyx"),
            (vars::TWILIO_ACCOUNT_SID, "AC0123"),
            (vars::TWILIO_API_KEY, "tok"),
            (
                vars::VONAGE_APPLICATION_ID,
                "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
            ),
            (vars::VONAGE_PRIVATE_KEY, pem.as_str()),
            (vars::PLIVO_AUTH_ID, "MAXXXXXXXXXXXXXXXXXX"),
            (vars::PLIVO_API_TOKEN, "ptok"),
            (vars::RETELL_API_KEY, "key_r"),
            (vars::ELEVENLABS_API_KEY, "sk_e"),
            (vars::VAPI_API_KEY, "v-private"),
            (vars::BIRD_API_KEY, "bk"),
            (vars::BIRD_WORKSPACE_ID, "ws-1"),
            (vars::BIRD_CHANNEL_IDS, "ch-1, ch-2"),
            (vars::RETELL_API_URL, "http://127.0.0.1:4000/"),
        ]);
        let config = ProviderApiConfig::from_env(&env).unwrap();
        assert_eq!(
            config.configured(),
            [
                "telnyx",
                "twilio",
                "vonage",
                "plivo",
                "retell",
                "elevenlabs",
                "vapi",
                "bird"
            ]
        );
        let twilio = config.twilio.as_ref().unwrap();
        assert_eq!(twilio.username, "AC0123");
        assert_eq!(twilio.base_url, TWILIO_DEFAULT_URL);
        assert_eq!(
            config.retell.as_ref().unwrap().base_url,
            "http://127.0.0.1:4000"
        );
        assert_eq!(config.bird.as_ref().unwrap().channel_ids, ["ch-1", "ch-2"]);
        // Debug never shows a credential.
        let debug = format!("{config:?}");
        for secret in [
            "KEYtelnyx",
            "tok",
            "ptok",
            "key_r",
            "sk_e",
            "v-private",
            "bk",
        ] {
            assert!(
                !debug.contains(&format!("\"{secret}\"")),
                "{secret} in {debug}"
            );
        }
        assert!(!debug.contains("PRIVATE KEY"));
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn an_api_key_sid_is_the_twilio_username() {
        let env = Env::from_pairs([
            (vars::TWILIO_ACCOUNT_SID, "AC0123"),
            (vars::TWILIO_API_KEY_SID, "SK0456"),
            (vars::TWILIO_API_KEY, "secret"),
        ]);
        let twilio = ProviderApiConfig::from_env(&env).unwrap().twilio.unwrap();
        assert_eq!(
            (twilio.account_sid.as_str(), twilio.username.as_str()),
            ("AC0123", "SK0456")
        );
        assert_eq!(twilio.password.expose(), "secret");
    }

    #[test]
    fn partial_or_malformed_credentials_name_the_variable_never_the_value() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[(vars::TWILIO_ACCOUNT_SID, "AC1")], vars::TWILIO_API_KEY),
            (
                &[(vars::TWILIO_API_KEY, "s3cr3t")],
                vars::TWILIO_ACCOUNT_SID,
            ),
            (
                &[(vars::TWILIO_API_KEY_SID, "SK1")],
                vars::TWILIO_ACCOUNT_SID,
            ),
            (
                &[
                    (vars::TWILIO_ACCOUNT_SID, "XX1"),
                    (vars::TWILIO_API_KEY, "s3cr3t"),
                ],
                vars::TWILIO_ACCOUNT_SID,
            ),
            (
                &[
                    (vars::TWILIO_ACCOUNT_SID, "AC1"),
                    (vars::TWILIO_API_KEY, "s3cr3t"),
                    (vars::TWILIO_API_KEY_SID, "AC2"),
                ],
                vars::TWILIO_API_KEY_SID,
            ),
            (
                &[(vars::TELNYX_API_KEY, "s3cr3t with space")],
                vars::TELNYX_API_KEY,
            ),
            (&[(vars::VAPI_API_KEY, "s3cr3t\u{e9}")], vars::VAPI_API_KEY),
            (
                &[(vars::VONAGE_APPLICATION_ID, "app")],
                vars::VONAGE_PRIVATE_KEY,
            ),
            (
                &[
                    (vars::VONAGE_APPLICATION_ID, "app"),
                    (vars::VONAGE_PRIVATE_KEY, "s3cr3t"),
                ],
                vars::VONAGE_PRIVATE_KEY,
            ),
            (
                &[
                    (vars::VONAGE_APPLICATION_ID, "app"),
                    (
                        vars::VONAGE_PRIVATE_KEY,
                        "-----BEGIN PRIVATE KEY-----\ns3cr3t\n-----END PRIVATE KEY-----",
                    ),
                ],
                vars::VONAGE_PRIVATE_KEY,
            ),
            (
                &[
                    (vars::VONAGE_APPLICATION_ID, "a/b"),
                    (vars::VONAGE_PRIVATE_KEY, "x"),
                ],
                vars::VONAGE_APPLICATION_ID,
            ),
            (&[(vars::PLIVO_API_TOKEN, "s3cr3t")], vars::PLIVO_AUTH_ID),
            (
                &[
                    (vars::PLIVO_AUTH_ID, "MA/../x"),
                    (vars::PLIVO_API_TOKEN, "s3cr3t"),
                ],
                vars::PLIVO_AUTH_ID,
            ),
            (
                &[
                    (vars::BIRD_API_KEY, "s3cr3t"),
                    (vars::BIRD_WORKSPACE_ID, "w"),
                ],
                vars::BIRD_CHANNEL_IDS,
            ),
            (
                &[
                    (vars::BIRD_API_KEY, "s3cr3t"),
                    (vars::BIRD_WORKSPACE_ID, "w"),
                    (vars::BIRD_CHANNEL_IDS, " , "),
                ],
                vars::BIRD_CHANNEL_IDS,
            ),
            (
                &[(vars::RETELL_API_URL, "http://api.retellai.com")],
                vars::RETELL_API_URL,
            ),
            (
                &[(vars::RETELL_API_URL, "https://user:s3cr3t@api.retellai.com")],
                vars::RETELL_API_URL,
            ),
            (
                &[(vars::TELNYX_API_URL, "https://api.telnyx.com/?k=s3cr3t")],
                vars::TELNYX_API_URL,
            ),
            (&[(vars::TELNYX_API_URL, "ftp://x")], vars::TELNYX_API_URL),
            (
                &[(vars::TELNYX_API_URL, "api.telnyx.com")],
                vars::TELNYX_API_URL,
            ),
            (
                &[(vars::PROVIDER_API_ATTEMPTS, "0")],
                vars::PROVIDER_API_ATTEMPTS,
            ),
            (
                &[(vars::PROVIDER_API_TIMEOUT_SECS, "600")],
                vars::PROVIDER_API_TIMEOUT_SECS,
            ),
        ];
        for (pairs, var) in cases {
            let err = ProviderApiConfig::from_env(&Env::from_pairs(pairs.iter().copied()))
                .expect_err(var);
            let text = err.to_string();
            assert!(text.starts_with(var), "{var}: {text}");
            assert!(!text.contains("s3cr3t"), "{text}");
        }
    }

    #[test]
    fn vonage_keys_in_both_pem_forms_and_one_line() {
        let pem = test_pem();
        let one_line = pem.replace('\n', "\\n");
        for value in [pem.as_str(), one_line.as_str()] {
            let key = RsaSigningKey::from_pem("V", value).unwrap();
            assert_eq!(key.sign(b"x").unwrap().len(), 256);
        }
        // PKCS#1 (`BEGIN RSA PRIVATE KEY`) as older tools write it.
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(&pem).unwrap();
        let pkcs1 = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        assert!(RsaSigningKey::from_pem("V", &pkcs1).is_ok());
        // An EC key is refused by name.
        let ec = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA==\n-----END EC PRIVATE KEY-----";
        let err = RsaSigningKey::from_pem("V", ec).unwrap_err().to_string();
        assert!(err.contains("RSA"), "{err}");
    }
}
