//! For tests that run vigil's processes: what an ended child printed, and the
//! newest checkpoint a run wrote.
#![allow(dead_code)]

/// The newest checkpoint's epoch in `dir` (by its manifest `epoch-E.json`), if any.
pub fn newest_manifest(dir: &std::path::Path) -> Option<u64> {
    std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("epoch-")?.strip_suffix(".json")?.parse().ok()).max()
}

pub trait OutputOf {
    /// What an ended child printed (stdout, then stderr), read from its pipes.
    fn wait_with_output_ref(&mut self) -> String;
}

impl OutputOf for std::process::Child {
    fn wait_with_output_ref(&mut self) -> String {
        use std::io::Read;
        let mut out = String::new();
        if let Some(o) = self.stdout.as_mut() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(e) = self.stderr.as_mut() {
            let _ = e.read_to_string(&mut out);
        }
        out
    }
}
