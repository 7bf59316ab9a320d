//! Shared by the benchmark programs: the machine's description and the section
//! writer for `benchmarks/RESULTS.md`.

use anyhow::Result;

/// Cores, CPU model and memory of this machine.
pub fn machine() -> String {
    format!(
        "{} cores ({}), {} GiB RAM",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned()))
            .unwrap_or_default(),
        std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| m.split_whitespace().nth(1).and_then(|k| k.parse::<u64>().ok())).unwrap_or(0) / 1024 / 1024,
    )
}

/// Replaces the section starting with `heading` in `path` (or appends it).
pub fn write_section(path: &str, heading: &str, section: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| {
        "# vigil benchmark results\n\nEach section is written by a benchmark program; numbers are medians from one run on the machine named.\n".into()
    });
    let mut out = String::new();
    let mut skipping = false;
    let mut replaced = false;
    for line in old.lines() {
        if line.starts_with("## ") {
            // the heading exactly, or followed by its "(measured ...)" stamp: one
            // heading being a prefix of another must not replace both
            skipping = line == heading || line.starts_with(&format!("{heading} ("));
            if skipping && !replaced {
                out.push_str(section.trim_end());
                out.push_str("\n\n");
                replaced = true;
            }
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !replaced {
        out.push('\n');
        out.push_str(section.trim_end());
        out.push('\n');
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// The median of `v` (the upper one of an even count).
#[allow(dead_code)] // not every benchmark program takes medians
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
