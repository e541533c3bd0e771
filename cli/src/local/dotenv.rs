//! The environment the local stack and the operator commands read: a `.env` file under the
//! process environment, and dev keys for every provider left unconfigured.

use std::path::Path;

use anyhow::{Result, bail};
use callhook::config::Env;

use super::keys;

/// Reads `KEY=VALUE` lines of a `.env` file (comments and blank lines skipped; values may be
/// quoted). The process environment wins over the file.
pub fn read_dotenv(path: &Path) -> Result<Vec<(String, String)>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Vec::new());
    };
    let mut vars = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            bail!("{}:{}: expected KEY=VALUE", path.display(), n + 1);
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        vars.push((key.trim().to_owned(), value.replace("\\n", "\n")));
    }
    Ok(vars)
}

/// The environment of an operator command, and of `callhook dev`: `.env`, then the process
/// environment over it, then dev keys for the providers both leave unset.
pub fn dev_env(state_dir: &Path) -> Result<Env> {
    let mut env = Env::from_pairs(read_dotenv(Path::new(".env"))?);
    for (k, v) in std::env::vars() {
        env.set(&k, v);
    }
    keys::fill_dev_keys(state_dir, &mut env)?;
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_lines_parse() {
        let dir = std::env::temp_dir().join(format!("callhook-dotenv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".env");
        std::fs::write(&path, "# c\nA=1\nexport B=\"two words\"\n\nC='x\\ny'\n").unwrap();
        let vars = read_dotenv(&path).unwrap();
        assert_eq!(
            vars,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x\ny".into())
            ]
        );
        std::fs::write(&path, "nonsense\n").unwrap();
        assert!(read_dotenv(&path).unwrap_err().to_string().contains(":1:"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
