//! The offline log and point-in-time training data.
//!
//! Every scored event's feature vector (the one written to `scores`) is appended,
//! with its key, event id, event time and source position, to Parquet files under
//! the job's data directory, partitioned by the hour of event time
//! (`DIR/offline/date=YYYY-MM-DD/hour=HH/part-*.parquet`, readable by duckdb,
//! pyarrow or Spark with Hive partitioning). `vigil features export` joins labels
//! to those rows by event id: each labeled event gets exactly the features it was
//! scored with, which are its features as of its own event, never later.
//!
//! - [`rows`]: the log's schema and the column batches workers fill;
//! - [`log`]: the writer thread (hour partitions, atomic file publication, epochs
//!   settled only once their rows are on disk);
//! - [`export`]: reading the log and labels back into a training table.

pub mod export;
pub mod log;
pub mod rows;

pub use log::{OfflineLink, OfflineLog};
pub use rows::OfflineRows;
