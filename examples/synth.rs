//! Write every synthetic evidence fixture into a directory.
//!
//! Usage: `cargo run --release --example synth -- OUTDIR`

use std::path::PathBuf;

use anyhow::{Context, Result};
use custody::media::synth::{self, Fixture};

fn main() -> Result<()> {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: synth OUTDIR");
        std::process::exit(2);
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for kind in Fixture::ALL {
        let path = dir.join(kind.file_name());
        let info =
            synth::generate(kind, &path).with_context(|| format!("generating {kind:?} at {}", path.display()))?;
        let mut line = format!("{}\t{:?}\t{} bytes", path.display(), kind, info.file_size);
        if let Some(codec) = info.video_codec {
            line += &format!(
                "\tvideo {codec} {}x{} {} frames {:.2}s",
                info.width,
                info.height,
                info.video_frames,
                info.video_seconds()
            );
        }
        if let Some(codec) = info.audio_codec {
            line += &format!(
                "\taudio {codec} {} Hz x{} {:.2}s",
                info.audio_sample_rate,
                info.audio_channels,
                info.audio_seconds()
            );
        }
        println!("{line}");
    }
    Ok(())
}
