//! The end-of-run summary that `vigil run` and `vigil demo` print: what was read,
//! scored and dead-lettered, what online learning did with the labels (each one's
//! outcome), and what drift monitoring found. Built as strings (tested) and
//! printed by the commands.

use std::fmt::Write;

use crate::learner::LearnerSummary;
use crate::metrics::Metrics;
use crate::monitor::MonitorSummary;
use crate::run::RunSummary;
use crate::spec::JobSpec;

/// `vigil run`'s summary: the records, the checkpoints, and the learner's and the
/// monitors' summaries when the job has them.
pub fn run_summary(summary: &RunSummary, metrics: &Metrics, job: &JobSpec) -> String {
    let mut out = String::from("vigil run summary\n");
    out.push_str(&accounting(metrics, job));
    let _ = writeln!(
        out,
        "  committed offsets of {} partitions; restored checkpoint {}; wrote {} checkpoints",
        summary.committed.len(),
        summary.restored_epoch.map_or("none".to_owned(), |e| e.to_string()),
        summary.checkpoints.checkpoints_written
    );
    if let Some(l) = &summary.learner {
        out.push_str(&learning(l, job));
    }
    if let Some(m) = &summary.monitor {
        out.push_str(&monitoring(m, job));
    }
    if let Some(o) = &summary.offline {
        let _ = writeln!(out, "  offline log: {} feature rows in {} Parquet files", o.rows, o.files);
    }
    if let Some(s) = &summary.savepoint {
        let _ = writeln!(out, "  savepoint: {}", s.display());
    }
    out
}

/// Records read from the input topic, scored and dead-lettered (by reason), as
/// this process counted them.
pub fn accounting(metrics: &Metrics, job: &JobSpec) -> String {
    let read = metrics.events_in.with_label_values(&[&job.source.topic]).get();
    let (scored, dlq) = (metrics.scores_out.get(), metrics.dlq_total());
    let mut out =
        format!("  read {read} records from {}: scored {scored} (to {}), dead-lettered {dlq} (to {})\n", job.source.topic, job.sinks.scores, job.sinks.dlq);
    for r in crate::types::Reason::ALL {
        let n = metrics.dlq.with_label_values(&[r.as_str()]).get();
        if n > 0 {
            let _ = writeln!(out, "    dlq {}: {n}", r.as_str());
        }
    }
    out
}

/// Drift monitoring: findings written and the first alarms.
pub fn monitoring(m: &MonitorSummary, job: &JobSpec) -> String {
    let topic = job.sinks.drift.as_deref().unwrap_or("(no drift topic)");
    let mut out = format!("  drift monitoring: {} feature/prediction findings written to {topic}, {} alarms\n", m.records, m.alarms.len());
    for a in m.alarms.iter().take(20) {
        let _ = writeln!(
            out,
            "    {} {} {}: {:.4} > {:.4} at event time {}",
            a.kind,
            a.name,
            a.method,
            a.value,
            a.threshold,
            crate::monitor::emit::format_ts(a.ts)
        );
    }
    if m.alarms.len() > 20 {
        let _ = writeln!(out, "    ... {} more in {topic}", m.alarms.len() - 20);
    }
    out
}

/// Online learning: the device, every label's outcome, training and the champion.
pub fn learning(l: &LearnerSummary, job: &JobSpec) -> String {
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    let mut out = format!("  online training on {}\n", l.device);
    let c = &l.counts;
    let _ = writeln!(
        out,
        "    labels: {} read: {} joined, {} expired, {} orphan, {} sampled out, {} malformed; {} predictions timed out; {} still pending at the end",
        c.labels_read, c.joined, c.expired, c.orphan, c.sampled_out, c.malformed, c.timed_out, l.unlabeled_at_end
    );
    if let Some(o) = &job.model.online {
        let bytes = crate::learner::pending::PendingStore::bytes_per_entry(job.model.inputs.len(), o.variants);
        let _ = writeln!(out, "    one pending prediction costs {bytes} bytes ({} inputs, {} variants)", job.model.inputs.len(), o.variants);
    }
    if l.held_at_end + l.early_at_end > 0 {
        let _ = writeln!(
            out,
            "    kept in the final checkpoint: {} samples of unsealed epochs, {} labels waiting for their prediction",
            l.held_at_end, l.early_at_end
        );
    }
    let variants = job.model.online.as_ref().map_or(1, |o| o.variants);
    let _ = writeln!(out, "    trained on {} samples x {variants} variants, {} selection rounds", c.trained, c.selections);
    let q = &l.champion_quality;
    let _ = writeln!(
        out,
        "    champion: slot {} (window of {} labels: ROC-AUC {}, PR-AUC {}, log loss {:.4})",
        l.champion,
        q.labels,
        fmt(q.roc_auc),
        fmt(q.pr_auc),
        q.log_loss
    );
    let s = &l.served_quality[0];
    let _ = writeln!(out, "    served scores over the whole run: {} labels, ROC-AUC {}, PR-AUC {}", s.labels, fmt(s.roc_auc), fmt(s.pr_auc));
    if let Some(path) = &l.run_log {
        let dir = path.parent().map_or(".".into(), |p| p.display().to_string());
        let _ = writeln!(out, "    experiment log: {} (see `vigil runs --dir {dir}`)", path.display());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_summary_has_the_records_and_the_label_accounting() {
        let job = crate::demo::fraud_online_job();
        let metrics = Metrics::new();
        metrics.events_in.with_label_values(&[&job.source.topic]).inc_by(1000);
        metrics.scores_out.inc_by(990);
        metrics.dlq.with_label_values(&[crate::types::Reason::ALL[0].as_str()]).inc_by(10);
        let mut learner = LearnerSummary { device: "cpu".into(), ..Default::default() };
        learner.counts.labels_read = 3000;
        learner.counts.malformed = 3000;
        let summary = RunSummary { committed: vec![(0, 10), (1, 20)], learner: Some(learner), ..Default::default() };
        let text = run_summary(&summary, &metrics, &job);
        assert!(text.starts_with("vigil run summary\n"), "{text}");
        assert!(
            text.contains(&format!(
                "  read 1000 records from {}: scored 990 (to {}), dead-lettered 10 (to {})\n",
                job.source.topic, job.sinks.scores, job.sinks.dlq
            )),
            "{text}"
        );
        assert!(text.contains(&format!("    dlq {}: 10\n", crate::types::Reason::ALL[0].as_str())), "{text}");
        assert!(text.contains("committed offsets of 2 partitions; restored checkpoint none; wrote 0 checkpoints"), "{text}");
        assert!(text.contains("  online training on cpu\n"), "{text}");
        assert!(text.contains("    labels: 3000 read: 0 joined, 0 expired, 0 orphan, 0 sampled out, 3000 malformed;"), "{text}");
        assert!(text.contains("champion: slot 0"), "{text}");
    }

    #[test]
    fn a_job_without_learner_or_monitor_prints_only_the_records() {
        let job = crate::demo::fraud_job();
        let text = run_summary(&RunSummary::default(), &Metrics::new(), &job);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(!text.contains("online training"));
    }
}
