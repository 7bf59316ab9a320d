//! `vigil features export`: point-in-time training tables from the offline log.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::KafkaArgs;

#[derive(Subcommand)]
pub enum FeaturesCommand {
    /// Joins labels to the offline log (`--data-dir` of `vigil run` or `vigil demo`)
    /// by event id and writes a Parquet training table: each labeled event with the
    /// features it was scored with, as of its own event.
    Export(ExportArgs),
}

#[derive(Args)]
pub struct ExportArgs {
    /// The job's data directory (holds `offline/`).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// A JSON-lines file of label records, or (with --brokers) a Kafka topic.
    #[arg(long)]
    pub labels: String,
    /// Read the labels topic from this cluster.
    #[arg(long)]
    pub brokers: Option<String>,
    /// librdkafka setting for the labels topic's cluster, KEY=VALUE; repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
    /// The label records' event-id field.
    #[arg(long, default_value = "event_id")]
    pub id_field: String,
    /// The label records' label field (boolean, 0/1, "true"/"false").
    #[arg(long, default_value = "is_fraud")]
    pub label_field: String,
    /// A time field of the label records, copied to `label_time`.
    #[arg(long)]
    pub label_time: Option<String>,
    /// The training table (Parquet).
    #[arg(long, default_value = "train.parquet")]
    pub out: PathBuf,
}

/// Runs the command.
pub fn run(command: FeaturesCommand) -> Result<()> {
    let FeaturesCommand::Export(a) = command;
    use vigil::offline::export::{export, LabelFields, LabelInput};
    let labels = match &a.brokers {
        Some(brokers) => {
            let kafka = KafkaArgs { brokers: brokers.clone(), settings: a.settings.clone() }.options()?;
            let records = vigil::kafka::read::read_topic(&kafka, &a.labels, std::time::Duration::from_secs(600))
                .with_context(|| format!("reading labels from topic `{}`", a.labels))?;
            LabelInput::Records { source: format!("topic `{}`", a.labels), payloads: records.into_iter().map(|r| r.payload).collect() }
        }
        None => LabelInput::File(PathBuf::from(&a.labels)),
    };
    let fields = LabelFields { id: a.id_field, label: a.label_field, time: a.label_time };
    let s = export(&a.data_dir, &labels, &fields, &a.out)?;
    let malformed: u64 = s.malformed.values().sum();
    println!(
        "vigil features export: {} rows ({} features) to {}; labels read {}, malformed {} {:?}, relabeled {}, not in the log {}; log: {} files, {} rows, {} replayed rows skipped",
        s.rows,
        s.features.len(),
        a.out.display(),
        s.labels,
        malformed,
        s.malformed,
        s.relabeled,
        s.unmatched,
        s.log_files,
        s.log_rows,
        s.duplicate_rows
    );
    Ok(())
}
