//! `vigil savepoint`: the newest checkpoint of a job copied out and kept, to
//! start a changed job from (`vigil run --from-savepoint`). A running job goes
//! on; to save exactly where a job stops, run it with `--savepoint-on-stop`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct SavepointArgs {
    /// The job's checkpoint directory (`vigil run --checkpoint-dir`).
    #[arg(long)]
    pub checkpoint_dir: PathBuf,
    /// Where savepoints are kept; this one goes to DIR/savepoint-<epoch>.
    #[arg(long)]
    pub dir: PathBuf,
}

pub fn run(a: SavepointArgs) -> Result<()> {
    let saved = vigil::checkpoint::savepoint::write(&a.checkpoint_dir, &a.dir)?;
    println!("{}", saved.display());
    Ok(())
}
