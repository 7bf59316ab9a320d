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

/// Every log file in `dir`, oldest first: by the start time in its name
/// (`<job>-<start>.jsonl`), else by its modification time; so across jobs the
/// last one is the newest run, whatever the jobs' names.
pub fn log_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .map(|p| (started_ms(&p).unwrap_or(i64::MIN), p))
        .collect();
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// When the run of a log started: the time in its name, else the file's
/// modification time (epoch ms).
fn started_ms(path: &Path) -> Option<i64> {
    let stem = path.file_stem()?.to_str()?;
    let stamp = stem.rsplit('-').next()?;
    match chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3fZ") {
        Ok(t) => Some(t.and_utc().timestamp_millis()),
        Err(_) => {
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
            Some(chrono::DateTime::<chrono::Utc>::from(modified).timestamp_millis())
        }
    }
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

/// The leaderboard of one log. The variants of the last selection round come
/// first, ranked on the same window of labels: the champion, then the challengers
/// by ROC-AUC; then the runs retired earlier (replaced by population-based
/// training), newest first, whose metrics come from their own last round.
pub fn leaderboard(dir: &Path, file: Option<&Path>) -> Result<String> {
    let path = pick(dir, file)?;
    let records = read_log(&path)?;
    let mut latest: std::collections::BTreeMap<u64, RunRecord> = Default::default();
    for r in records {
        latest.insert(r.run, r);
    }
    let mut runs: Vec<RunRecord> = latest.into_values().collect();
    let last_round = runs.iter().map(|r| r.round).max().unwrap_or(0);
    let auc = |r: &RunRecord| r.roc_auc.unwrap_or(-1.0);
    runs.sort_by(|a, b| {
        (b.round == last_round)
            .cmp(&(a.round == last_round))
            .then(b.champion.cmp(&a.champion))
            .then(b.round.cmp(&a.round))
            .then(auc(b).total_cmp(&auc(a)))
            .then(a.run.cmp(&b.run))
    });
    let mut out = format!("{} (round {last_round})\n", path.display());
    out.push_str(&format!(
        "{:>5} {:>6} {:>4} {:>9} {:>9} {:>6} {:>6} {:>5} {:>5} {:>8} {:>7} {:>7} {:>7} {:>8}  {}\n",
        "run", "parent", "slot", "lr", "l2", "pos_w", "hidden", "opt", "round", "labels", "auc", "pr_auc", "logloss", "window", "status"
    ));
    for r in runs {
        let status = match (r.round == last_round, r.champion) {
            (true, true) => "champion",
            (true, false) => "",
            (false, _) => "retired",
        };
        out.push_str(&format!(
            "{:>5} {:>6} {:>4} {:>9.2e} {:>9.2e} {:>6.2} {:>6} {:>5} {:>5} {:>8} {:>7} {:>7} {:>7.4} {:>8}  {}\n",
            r.run,
            r.parent.map_or("-".into(), |p| p.to_string()),
            r.slot,
            r.lr,
            r.l2,
            r.pos_weight,
            r.hidden,
            r.optimizer,
            r.round,
            r.labels,
            fmt_opt(r.roc_auc),
            fmt_opt(r.pr_auc),
            r.log_loss,
            r.window_labels,
            status
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(round: u64, run: u64, auc: f64, champion: bool) -> RunRecord {
        let q = Quality { labels: 1000, roc_auc: Some(auc), ..Default::default() };
        RunRecord::new(round, round * 1000, (run % 4) as usize, run, None, &Hyper::adam(0.01, 0.0, 1.0), &q, champion)
    }

    fn write(path: &Path, records: &[RunRecord]) {
        let text: String = records.iter().map(|r| format!("{}\n", serde_json::to_string(r).unwrap())).collect();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn the_newest_log_is_chosen_not_the_alphabetically_last() {
        let dir = tempfile::tempdir().unwrap();
        let older = dir.path().join("zeta-20240101T000000.000Z.jsonl");
        let newer = dir.path().join("alpha-20250101T000000.000Z.jsonl");
        let newest = dir.path().join("alpha-20250101T000000.001Z.jsonl");
        for p in [&older, &newest, &newer] {
            write(p, &[record(1, 1, 0.7, true)]);
        }
        assert_eq!(log_files(dir.path()).unwrap(), vec![older.clone(), newer.clone(), newest.clone()]);
        assert_eq!(pick(dir.path(), None).unwrap(), newest);
        // a log without a time in its name counts from its modification time
        let renamed = dir.path().join("zzz-renamed.jsonl");
        write(&renamed, &[record(1, 1, 0.7, true)]);
        let old_time = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        File::options().write(true).open(&renamed).unwrap().set_modified(old_time).unwrap();
        assert_eq!(pick(dir.path(), None).unwrap(), newest, "a file modified in 2020 is older than the 2025 runs");
        File::options().write(true).open(&renamed).unwrap().set_modified(std::time::SystemTime::now()).unwrap();
        assert_eq!(pick(dir.path(), None).unwrap(), renamed);
        assert!(leaderboard(dir.path(), None).unwrap().starts_with(&renamed.display().to_string()));
    }

    #[test]
    fn the_champion_leads_and_retired_runs_follow() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("job-20250101T000000.000Z.jsonl");
        // round 1: runs 1..3; run 3 (AUC 0.95 on round 1's window) is replaced by run 4
        // round 2: the champion (run 1) has a lower AUC than run 3 had in round 1
        write(
            &log,
            &[
                record(1, 1, 0.80, false),
                record(1, 2, 0.70, false),
                record(1, 3, 0.95, true),
                record(2, 1, 0.85, true),
                record(2, 2, 0.75, false),
                record(2, 4, 0.90, false),
            ],
        );
        let board = leaderboard(dir.path(), None).unwrap();
        let rows: Vec<(u64, String)> = board
            .lines()
            .skip(2)
            .map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                (cols[0].parse().unwrap(), if cols.len() > 14 { cols[14].to_owned() } else { String::new() })
            })
            .collect();
        assert_eq!(rows, vec![(1, "champion".into()), (4, String::new()), (2, String::new()), (3, "retired".into())], "{board}");
        assert!(board.lines().next().unwrap().ends_with("(round 2)"), "{board}");
    }
}
