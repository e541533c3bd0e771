//! Where the running `callhook dev` stack lives, written to `.callhook/dev.json` for the other
//! commands.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Where the local stack lives, written to `.callhook/dev.json` for the other commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevState {
    pub url: String,
    pub aws_endpoint: String,
    pub tables: BTreeMap<String, String>,
    pub queues: BTreeMap<String, String>,
    /// Written since buckets were provisioned: absent in an older dev.json.
    #[serde(default)]
    pub buckets: BTreeMap<String, String>,
}

impl DevState {
    pub fn load(state_dir: &Path) -> Result<DevState> {
        let path = state_dir.join("dev.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{} not found: is `callhook dev` running?", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))
    }
}
