//! Records the git commit the binary is built from, for `spreadguard_build_info` and
//! `--version`; "unknown" outside a git checkout (a source tarball, a container build
//! without `.git`).

use std::process::Command;

fn main() {
    if let Ok(commit) = std::env::var("SPREADGUARD_BUILD_COMMIT")
        && !commit.is_empty()
    {
        println!("cargo:rustc-env=SPREADGUARD_BUILD_COMMIT={commit}");
    } else if let Some(commit) = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        println!("cargo:rustc-env=SPREADGUARD_BUILD_COMMIT={commit}");
    }
    println!("cargo:rerun-if-env-changed=SPREADGUARD_BUILD_COMMIT");
    // A new commit moves HEAD or the ref it names (`--git-path` finds both in a worktree).
    let git_path = |path: &str| {
        Command::new("git")
            .args(["rev-parse", "--git-path", path])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    if let Some(head) = git_path("HEAD") {
        println!("cargo:rerun-if-changed={head}");
        if let Ok(text) = std::fs::read_to_string(&head)
            && let Some(name) = text.strip_prefix("ref: ")
            && let Some(r) = git_path(name.trim())
        {
            println!("cargo:rerun-if-changed={r}");
        }
    }
}
