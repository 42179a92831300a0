//! Running `cargo` from inside a test, for the tests whose subject is a built artifact (the
//! Lambda binaries, the demo example) rather than a library call.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (this crate lives one level below it).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A `cargo` command in the workspace root with the environment a user's shell would give
/// it. `cargo test` hands its test binaries `CARGO_*` variables and a library path that
/// build scripts watch, so passing them on would make every run rebuild from scratch.
pub fn command() -> Command {
    let mut command = Command::new("cargo");
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if (name.starts_with("CARGO") && name != "CARGO_HOME")
            || name.starts_with("RUSTC")
            || name == "LD_LIBRARY_PATH"
            || name == "OUT_DIR"
        {
            command.env_remove(name.as_ref());
        }
    }
    command.current_dir(workspace());
    command
}
