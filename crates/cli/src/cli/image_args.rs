//! The arguments of the image commands (pull, push, images, tag, history, rmi,
//! prune, save, load, login, commit, import).

use clap::Args;

#[derive(Args, Debug)]
pub struct PullArgs {
    pub image: String,
    /// Suppress progress output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Platform to pull, e.g. linux/arm64 or linux/arm/v7.
    #[arg(long)]
    pub platform: Option<String>,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// NAME[:TAG]
    pub name: String,
    /// Push all tags of the repository.
    #[arg(short, long)]
    pub all_tags: bool,
    /// Suppress progress output.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images).
    #[arg(short, long)]
    pub all: bool,
    /// Only show image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Format output: table, `table TEMPLATE`, json, or a Go template.
    #[arg(long)]
    pub format: Option<String>,
    /// Show full ids.
    #[arg(long)]
    pub no_trunc: bool,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// Repository filter, like `berth images busybox`.
    pub repository: Option<String>,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    /// SOURCE_IMAGE[:TAG]
    pub source: String,
    /// TARGET_IMAGE[:TAG]
    pub target: String,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    pub image: String,
    /// Format output: table, `table TEMPLATE`, json, or a Go template.
    #[arg(long)]
    pub format: Option<String>,
    /// Print sizes and dates in human readable format.
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub human: bool,
    /// Don't truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image ids.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Remove even if a container uses the image.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Also remove images that have tags but no container uses.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt (berth never prompts; accepted for Docker compatibility).
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    pub server: Option<String>,
    #[arg(short, long)]
    pub username: Option<String>,
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    pub container: String,
    /// REPOSITORY[:TAG] for the new image.
    pub reference: Option<String>,
    /// Commit message.
    #[arg(short, long)]
    pub message: Option<String>,
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image.
    #[arg(short, long = "change")]
    pub change: Vec<String>,
    /// Pause container during commit.
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub pause: bool,
    /// Layer compression: gzip or zstd.
    #[arg(long, default_value = "gzip", value_parser = ["gzip", "zstd"])]
    pub compress: String,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// A tar archive (plain, gzip or zstd), or - for stdin.
    pub file: String,
    /// REPOSITORY[:TAG] for the new image.
    pub reference: Option<String>,
    /// Set commit message for imported image.
    #[arg(short, long)]
    pub message: Option<String>,
    /// Apply Dockerfile instruction to the created image.
    #[arg(short, long = "change")]
    pub change: Vec<String>,
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT.
    #[arg(short, long)]
    pub output: Option<std::path::PathBuf>,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN.
    #[arg(short, long)]
    pub input: Option<std::path::PathBuf>,
    /// Suppress the load output.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The build context: a directory, or `-` for a tar archive (or a
    /// Dockerfile alone) on stdin.
    pub context: std::path::PathBuf,
    /// Name and optionally a tag in the "name:tag" format.
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default: "CONTEXT/Dockerfile").
    #[arg(short = 'f', long = "file")]
    pub file: Option<std::path::PathBuf>,
    /// Set build-time variables (KEY=VALUE, or KEY for the environment's).
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use cache when building the image.
    #[arg(long)]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the base images.
    #[arg(long)]
    pub pull: bool,
    /// Set the base images' platform (e.g. linux/arm64).
    #[arg(long)]
    pub platform: Option<String>,
    /// Set metadata for an image (KEY=VALUE).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Suppress the build output and print image ID on success.
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image ID to the file.
    #[arg(long)]
    pub iidfile: Option<std::path::PathBuf>,
    /// The RUN steps' network: none, host or a network's name (default: the configuration's).
    #[arg(long)]
    pub network: Option<String>,
    /// Secret to expose to the build's RUN --mount=type=secret (id=ID,src=PATH or id=ID,env=VAR).
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// Set type of progress output: plain, tty (a live view), or auto (tty on a terminal).
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressArg,
}

/// `build --progress`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressArg {
    Auto,
    Plain,
    Tty,
}
