//! Dev keys: one random 32-byte seed per provider in `.callhook/keys/`, from which the provider's
//! dev signer derives its keys (see `callhook::providers::DevSigner`). Local use only.

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
        return parse_seed(&text)
            .with_context(|| format!("{} is not a 64-hex-digit seed", path.display()));
    }
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, hex + "\n").with_context(|| format!("writing {}", path.display()))?;
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
pub fn fill_dev_keys(dir: &Path, env: &mut Env) -> Result<Vec<&'static str>> {
    let mut generated = Vec::new();
    for provider in providers::supported() {
        let seed = load_or_create(dir, provider)?;
        let signer = providers::dev_signer(provider, &seed).expect("supported provider");
        let vars = signer.verifier_env();
        if vars.iter().any(|(var, _)| env.get(var).is_some()) {
            continue;
        }
        for (var, value) in vars {
            env.set(var, value);
        }
        generated.push(provider);
    }
    Ok(generated)
}
