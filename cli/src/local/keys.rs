//! Dev keys: one random 32-byte seed per provider in `.callhook/keys/`, from which the provider's
//! dev signer derives its keys (see `callhook::providers::DevSigner`). Local use only.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use callhook::config::Env;
use callhook::providers::{self, DevSigner};
use rand_core::{OsRng, RngCore};

pub const STATE_DIR: &str = ".callhook";

fn seed_path(dir: &Path, provider: &str) -> PathBuf {
    dir.join("keys").join(format!("{provider}.seed"))
}

fn parse_seed(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut seed = [0u8; 32];
    for (i, byte) in seed.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(seed)
}

/// The provider's dev seed, created on first use.
pub fn load_or_create(dir: &Path, provider: &str) -> Result<[u8; 32]> {
    let path = seed_path(dir, provider);
    if let Ok(text) = std::fs::read_to_string(&path) {
        // Written by an earlier version with the default mode: narrowed now.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        return parse_seed(&text)
            .with_context(|| format!("{} is not a 64-hex-digit seed", path.display()));
    }
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    let keys = path.parent().unwrap_or(dir);
    std::fs::create_dir_all(keys)?;
    std::fs::set_permissions(keys, std::fs::Permissions::from_mode(0o700))?;
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    // A seed is a private key: the owner's only, from the moment it exists.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all((hex + "\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(seed)
}

/// The dev signer for a provider whose seed already exists.
pub fn signer(dir: &Path, provider: &str) -> Result<Box<dyn DevSigner>> {
    if !providers::supported().any(|p| p == provider) {
        bail!(
            "unknown provider {provider:?}; callhook knows {}",
            providers::supported().collect::<Vec<_>>().join(", ")
        );
    }
    let path = seed_path(dir, provider);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no dev key for {provider} at {}: start `callhook dev` first (it creates dev keys \
             for providers the environment leaves unconfigured)",
            path.display()
        )
    })?;
    let seed = parse_seed(&text)
        .with_context(|| format!("{} is not a 64-hex-digit seed", path.display()))?;
    Ok(providers::dev_signer(provider, &seed).expect("supported provider"))
}

/// Adds dev keys to `env` for every provider it leaves unconfigured; returns their names.
///
/// A provider is left unconfigured when its constructor finds nothing to configure it in
/// `env` and none of the variables its dev keys would set is set. A provider the environment
/// configures, or configures wrongly (e.g. `VAPI_TOKENS` without `VAPI_AUTH`), is left as it
/// is: ingest then uses it, or names the variable that is wrong, as it would when deployed.
pub fn fill_dev_keys(dir: &Path, env: &mut Env) -> Result<Vec<&'static str>> {
    let mut generated = Vec::new();
    for entry in providers::CONSTRUCTORS {
        let provider = entry.name;
        let seed = load_or_create(dir, provider)?;
        let signer = providers::dev_signer(provider, &seed).expect("supported provider");
        let vars = signer.verifier_env();
        if vars.iter().any(|(var, _)| env.get(var).is_some())
            || !matches!((entry.from_env)(env), Ok(None))
        {
            continue;
        }
        for (var, value) in vars {
            env.set(var, value);
        }
        generated.push(provider);
    }
    Ok(generated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use callhook::providers::Providers;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("callhook-keys-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn an_empty_environment_gets_dev_keys_for_every_provider() {
        let dir = temp_dir("all");
        let mut env = Env::default();
        let generated = fill_dev_keys(&dir, &mut env).unwrap();
        let all: Vec<&str> = providers::supported().collect();
        assert_eq!(generated, all);
        for new in ["twilio", "vonage", "plivo", "retell", "elevenlabs", "vapi"] {
            assert!(generated.contains(&new), "{new}");
        }
        // Vapi's mode is chosen explicitly, as its constructor requires.
        assert_eq!(env.get("VAPI_AUTH"), Some("hmac"));
        let configured = Providers::from_env(&env).unwrap();
        assert_eq!(configured.names().collect::<Vec<_>>(), all);
        // The same seeds next time: `callhook send` signs with what `callhook dev` configured.
        let mut again = Env::default();
        fill_dev_keys(&dir, &mut again).unwrap();
        assert_eq!(
            again.iter().collect::<Vec<_>>(),
            env.iter().collect::<Vec<_>>()
        );
        for provider in providers::supported() {
            let signer = signer(&dir, provider).unwrap();
            for (var, value) in signer.verifier_env() {
                assert_eq!(env.get(var), Some(value.as_str()), "{provider}: {var}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_files_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("modes");
        load_or_create(&dir, "crm").unwrap();
        let path = seed_path(&dir, "crm");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        // A seed written by an earlier version with a wider mode is narrowed when read.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        load_or_create(&dir, "crm").unwrap();
        assert_eq!(mode(&path), 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn providers_the_environment_configures_are_left_alone() {
        let dir = temp_dir("configured");
        let token = "a-vapi-token-of-32-characters-ok";
        let mut env = Env::from_pairs([
            ("VAPI_AUTH", "token"),
            ("VAPI_TOKENS", token),
            ("TWILIO_AUTH_TOKENS", "real-twilio-token"),
        ]);
        let generated = fill_dev_keys(&dir, &mut env).unwrap();
        assert!(!generated.contains(&"vapi") && !generated.contains(&"twilio"));
        assert!(generated.contains(&"plivo"));
        assert_eq!(env.get("VAPI_HMAC_SECRETS"), None);
        assert_eq!(env.get("TWILIO_AUTH_TOKENS"), Some("real-twilio-token"));
        assert!(Providers::from_env(&env).unwrap().get("vapi").is_some());

        // A provider configured wrongly keeps its error, which names the variable, instead of
        // dev keys that would hide it (or add a second one).
        let mut env = Env::from_pairs([("VAPI_TOKENS", token)]);
        let generated = fill_dev_keys(&dir, &mut env).unwrap();
        assert!(!generated.contains(&"vapi"));
        let err = Providers::from_env(&env).err().unwrap().to_string();
        assert!(err.contains("VAPI_AUTH"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
