//! The experiment log: every variant's hyperparameters and progressive-validation
//! metrics at every selection round, appended as JSON lines to
//! `<runs_dir>/<job>-<start>.jsonl`; and its readers behind `vigil runs`
//! (leaderboard) and `vigil runs show ID` (one run's curve in the terminal).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use vigil_operators::learn::quality::Quality;
use vigil_operators::learn::Hyper;

/// One line of the log: one variant at one selection round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub ts_ms: i64,
    pub round: u64,
    /// Labels joined so far in the job.
    pub labels: u64,
    pub slot: usize,
    pub run: u64,
    /// The run this one was copied from (population-based training).
    pub parent: Option<u64>,
    pub lr: f32,
    pub l2: f32,
    pub pos_weight: f32,
    pub hidden: u32,
    pub optimizer: String,
    pub window_labels: usize,
    pub log_loss: f64,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub champion: bool,
}

impl RunRecord {
    #[allow(clippy::too_many_arguments)]
    pub fn new(round: u64, labels: u64, slot: usize, run: u64, parent: Option<u64>, h: &Hyper, q: &Quality, champion: bool) -> RunRecord {
        RunRecord {
            ts_ms: chrono::Utc::now().timestamp_millis(),
            round,
            labels,
            slot,
            run,
            parent,
            lr: h.lr,
            l2: h.l2,
            pos_weight: h.pos_weight,
            hidden: h.hidden,
            optimizer: format!("{:?}", h.optimizer_kind()).to_lowercase(),
            window_labels: q.labels,
            log_loss: q.log_loss,
            roc_auc: q.roc_auc,
            pr_auc: q.pr_auc,
            champion,
        }
    }
}

/// An open experiment log.
pub struct RunLog {
    path: PathBuf,
    out: BufWriter<File>,
}

impl RunLog {
    pub fn create(dir: &Path, job: &str) -> Result<RunLog> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let job: String = job.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let path = dir.join(format!("{job}-{}.jsonl", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")));
        let file = OpenOptions::new().create(true).append(true).open(&path).with_context(|| format!("opening {}", path.display()))?;
        Ok(RunLog { path, out: BufWriter::new(file) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&mut self, r: &RunRecord) -> Result<()> {
        serde_json::to_writer(&mut self.out, r)?;
        self.out.write_all(b"\n")?;
        self.out.flush()?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }
}

/// Every log file in `dir`, oldest first (names sort by start time).
pub fn log_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    Ok(files)
}

/// The records of one log file (lines that do not parse are skipped).
pub fn read_log(path: &Path) -> Result<Vec<RunRecord>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(BufReader::new(file).lines().map_while(|l| l.ok()).filter_map(|l| serde_json::from_str(&l).ok()).collect())
}

/// The newest log in `dir`, or `file` when given.
fn pick(dir: &Path, file: Option<&Path>) -> Result<PathBuf> {
    match file {
        Some(f) => Ok(f.to_owned()),
        None => match log_files(dir)?.pop() {
            Some(f) => Ok(f),
            None => bail!("no experiment logs in {}", dir.display()),
        },
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.4}"))
}

/// The leaderboard of one log: each run's latest record, best ROC-AUC first.
pub fn leaderboard(dir: &Path, file: Option<&Path>) -> Result<String> {
    let path = pick(dir, file)?;
    let records = read_log(&path)?;
    let mut latest: std::collections::BTreeMap<u64, RunRecord> = Default::default();
    for r in records {
        latest.insert(r.run, r);
    }
    let mut runs: Vec<RunRecord> = latest.into_values().collect();
    runs.sort_by(|a, b| b.roc_auc.unwrap_or(-1.0).total_cmp(&a.roc_auc.unwrap_or(-1.0)).then(a.run.cmp(&b.run)));
    let mut out = format!("{}\n", path.display());
    out.push_str(&format!(
        "{:>5} {:>6} {:>4} {:>9} {:>9} {:>6} {:>6} {:>5} {:>8} {:>7} {:>7} {:>7} {:>8}  {}\n",
        "run", "parent", "slot", "lr", "l2", "pos_w", "hidden", "opt", "labels", "auc", "pr_auc", "logloss", "window", "status"
    ));
    for r in runs {
        out.push_str(&format!(
            "{:>5} {:>6} {:>4} {:>9.2e} {:>9.2e} {:>6.2} {:>6} {:>5} {:>8} {:>7} {:>7} {:>7.4} {:>8}  {}\n",
            r.run,
            r.parent.map_or("-".into(), |p| p.to_string()),
            r.slot,
            r.lr,
            r.l2,
            r.pos_weight,
            r.hidden,
            r.optimizer,
            r.labels,
            fmt_opt(r.roc_auc),
            fmt_opt(r.pr_auc),
            r.log_loss,
            r.window_labels,
            if r.champion { "champion" } else { "" }
        ));
    }
    Ok(out)
}

/// One run's ROC-AUC over the labels seen, as a terminal chart.
pub fn show(dir: &Path, file: Option<&Path>, run: u64) -> Result<String> {
    let path = pick(dir, file)?;
    let records: Vec<RunRecord> = read_log(&path)?.into_iter().filter(|r| r.run == run).collect();
    let Some(last) = records.last() else { bail!("run {run} is not in {}", path.display()) };
    let points: Vec<(u64, f64)> = records.iter().filter_map(|r| r.roc_auc.map(|a| (r.labels, a))).collect();
    let mut out = format!(
        "run {run} (slot {}, parent {}): lr {:.2e}, l2 {:.2e}, pos_weight {:.2}, hidden {}, {}\n",
        last.slot,
        last.parent.map_or("-".into(), |p| p.to_string()),
        last.lr,
        last.l2,
        last.pos_weight,
        last.hidden,
        last.optimizer
    );
    if points.is_empty() {
        out.push_str("no ROC-AUC yet (too few labels of both classes)\n");
        return Ok(out);
    }
    const W: usize = 60;
    const H: usize = 12;
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min).min(0.5);
    let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max).max(lo + 1e-3);
    let (x0, x1) = (points[0].0 as f64, points.last().map_or(1.0, |p| p.0 as f64).max(points[0].0 as f64 + 1.0));
    let mut grid = vec![vec![' '; W]; H];
    for &(x, y) in &points {
        let c = (((x as f64 - x0) / (x1 - x0)) * (W - 1) as f64).round() as usize;
        let r = (((hi - y) / (hi - lo)) * (H - 1) as f64).round() as usize;
        grid[r.min(H - 1)][c.min(W - 1)] = '*';
    }
    out.push_str("ROC-AUC\n");
    for (i, row) in grid.iter().enumerate() {
        let label = hi - (hi - lo) * i as f64 / (H - 1) as f64;
        out.push_str(&format!("{label:>7.4} |{}\n", row.iter().collect::<String>()));
    }
    out.push_str(&format!("        +{}\n         labels {} .. {}\n", "-".repeat(W), x0, x1));
    Ok(out)
}
