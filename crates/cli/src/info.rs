//! `berth info`: Docker's command — what berth runs on, and what it had
//! to do without here; the engine gathers it ([`berth_engine::info`]).

use anyhow::Result;
use berth_engine::Engine;
use berth_engine::info::{self, Info};
use berth_io::outln;

use crate::cli::Format;

pub fn info(engine: &Engine, format: Format) -> Result<u8> {
    let info = info::gather(engine)?;
    match format {
        Format::Table => print_text(&info),
        Format::Json => outln!("{}", serde_json::to_string(&info)?),
    }
    Ok(0)
}

fn print_text(i: &Info) {
    outln!("Server Version: {}", i.server_version);
    outln!("Root Dir: {}", i.root_dir);
    outln!("Exec Root: {}", i.exec_root);
    outln!("Containers: {}", i.containers);
    outln!(" Running: {}", i.containers_running);
    outln!(" Stopped: {}", i.containers_stopped);
    outln!("Images: {}", i.images);
    outln!("Storage Driver: {}", i.driver);
    outln!(" Backing Filesystem: {}", i.backing_filesystem);
    if let Some(u) = &i.upper_dirs {
        outln!(" Upper Dirs: {u}");
    }
    outln!("Cgroup Driver: {}", i.cgroup_driver);
    match i.cgroup_version {
        Some(v) => outln!("Cgroup Version: {v}"),
        None => outln!("Cgroup Version: none"),
    }
    outln!("Cgroups: {}", i.cgroups);
    outln!("Security Options:");
    for o in &i.security_options {
        outln!(" {o}");
    }
    outln!("Rootless: {}", i.rootless);
    outln!("User Namespaces: {}", i.user_namespaces);
    if i.capabilities_missing.is_empty() {
        outln!("Capabilities Missing: none");
    } else {
        outln!(
            "Capabilities Missing: {}",
            i.capabilities_missing.join(", ")
        );
    }
    outln!("Kernel Version: {}", i.kernel_version);
    outln!("Operating System: {}", i.operating_system);
    outln!("OSType: {}", i.os_type);
    outln!("Architecture: {}", i.architecture);
    outln!("CPUs: {}", i.ncpu);
    outln!(
        "Total Memory: {:.2}GiB",
        i.mem_total as f64 / (1u64 << 30) as f64
    );
    outln!("Name: {}", i.name);
    if i.adapted.is_empty() {
        outln!("Adapted: nothing");
    } else {
        outln!("Adapted:");
        for a in &i.adapted {
            outln!(" {a}");
        }
    }
}
