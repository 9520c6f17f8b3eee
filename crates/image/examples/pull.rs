//! `cargo run -p berth-image --example pull -- ROOT REFERENCE [--unpack]`: pull into a
//! store and optionally read every layer back (decompressed), for timing by hand.

use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(root), Some(r)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: pull ROOT REFERENCE [--unpack]");
    };
    let store = berth_image::Store::open(root)?;
    let t = Instant::now();
    let p = berth_image::pull(
        &store,
        r,
        &berth_image::PullOptions::default(),
        &berth_image::Progress::new(berth_image::ProgressMode::Auto),
    )?;
    eprintln!("pull: {:.2?}", t.elapsed());
    if args.iter().any(|a| a == "--unpack") {
        let t = Instant::now();
        let mut n = 0;
        for l in store.layers(&p.image) {
            n += std::io::copy(&mut store.open_layer(&l)?, &mut std::io::sink())?;
        }
        eprintln!("read back {n} bytes: {:.2?}", t.elapsed());
    }
    Ok(())
}
