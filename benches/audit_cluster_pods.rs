//! `spreadguard audit --cluster` at scale: 150,000 running pods of 10,000 Deployments (with
//! their ReplicaSets) on 300 nodes in 3 zones, served page by page by the in-test fake API
//! server (plain HTTP on 127.0.0.1); each pod is a realistic ~3.5 KB list item.
//!
//! Measures the wall time of the real release binary (`audit --cluster -o json`, output to
//! /dev/null) and its peak resident memory (`ru_maxrss` from `wait4`). Targets: < 10 s and
//! < 250 MB.
//!
//! Run: `cargo build --release && cargo bench --bench audit_cluster_pods` (with
//! `BASELINE_BIN=old/spreadguard`, an older build is measured in the same run). Under `cargo test`
//! it runs a small smoke version with the debug binary.

#[path = "../tests/support/fake_apiserver.rs"]
#[allow(dead_code)]
mod fake_apiserver;
#[path = "../tests/support/objects.rs"]
#[allow(dead_code)]
mod objects;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fake_apiserver::FakeApiServer;
use objects::{PodState, deployment, pod, replicaset};

const ZONE: &str = "topology.kubernetes.io/zone";

struct Run {
    wall: Duration,
    /// User + system CPU time: what the run costs whatever else loads the machine.
    cpu: Duration,
    max_rss_kb: i64,
    exit: i32,
    stdout_bytes: u64,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "wall {:.2} s, CPU {:.2} s, peak RSS {:.1} MB, exit {}",
            self.wall.as_secs_f64(),
            self.cpu.as_secs_f64(),
            self.max_rss_kb as f64 / 1024.0,
            self.exit
        )
    }
}

/// Runs the binary to completion and reads its peak RSS from the kernel.
///
/// Not directly from this process: a child spawned by `posix_spawn` shares this process's
/// memory until it execs, and Linux carries that memory's high-water mark into the child's
/// `ru_maxrss` (it read 908 MB whatever the audit used: this process holds the fake API
/// server's 522 MB of pods). So this bench re-runs itself as a small measuring process
/// (`--measure`), whose own child starts from that small image.
fn run(bin: &std::path::Path, kubeconfig: &std::path::Path, out: &std::path::Path) -> Run {
    let me = std::env::current_exe().expect("the bench knows its own path");
    let measured = std::process::Command::new(me)
        .arg("--measure")
        .args([bin, kubeconfig, out])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("the measuring process runs");
    let line = String::from_utf8_lossy(&measured.stdout);
    let f: Vec<u64> = line
        .split_whitespace()
        .map(|n| n.parse().expect("the measuring process prints numbers"))
        .collect();
    Run {
        wall: Duration::from_micros(f[0]),
        cpu: Duration::from_micros(f[1]),
        max_rss_kb: f[2] as i64,
        exit: f[3] as i32,
        stdout_bytes: std::fs::metadata(out).map_or(0, |m| m.len()),
    }
}

/// The measuring process: runs `bin audit --cluster -o json --kubeconfig K > OUT` and prints
/// wall µs, CPU µs, peak RSS KiB and the exit code.
fn measure(bin: &str, kubeconfig: &str, out: &str) {
    let started = Instant::now();
    #[allow(
        clippy::zombie_processes,
        reason = "reaped by wait4 below, which also reads its resource usage"
    )]
    let child = std::process::Command::new(bin)
        .args([
            "audit",
            "--cluster",
            "-o",
            "json",
            "--kubeconfig",
            kubeconfig,
        ])
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("the binary runs");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for the child just spawned; pointers are to live locals.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    println!(
        "{} {} {} {}",
        started.elapsed().as_micros(),
        us(usage.ru_utime) + us(usage.ru_stime),
        usage.ru_maxrss,
        libc::WEXITSTATUS(status)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, bin, kubeconfig, out] = args.as_slice()
        && flag == "--measure"
    {
        return measure(bin, kubeconfig, out);
    }
    let full = std::env::args().any(|a| a == "--bench");
    let (workloads, per_workload, nodes) = if full { (10_000, 15, 300) } else { (30, 10, 9) };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), PathBuf::from);
    let bin = target
        .join(if full { "release" } else { "debug" })
        .join("spreadguard");
    if !bin.exists() {
        println!(
            "audit --cluster at scale: skipped ({} is not built)",
            bin.display()
        );
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let api = runtime.block_on(FakeApiServer::start());
    let _guard = runtime.enter();
    let zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
    for i in 0..nodes {
        let name = format!("node-{i:04}");
        api.put_node(
            &name,
            &[("kubernetes.io/hostname", &name), (ZONE, zones[i % 3])],
        );
    }
    let built = Instant::now();
    let mut pods = Vec::with_capacity(workloads * per_workload);
    for w in 0..workloads {
        let ns = format!("team-{}", w % 50);
        let name = format!("svc-{w}");
        let rs = format!("{name}-5d9c7b8f6");
        api.put_object("deployments", deployment(&ns, &name, per_workload as u32));
        api.put_object(
            "replicasets",
            replicaset(&ns, &rs, &name, per_workload as u32),
        );
        for p in 0..per_workload {
            // Most workloads spread evenly; every 7th has all its pods in one zone.
            let node = if w % 7 == 0 {
                (w * 3) % nodes
            } else {
                (w + p * 101) % nodes
            };
            let state = if p == 0 && w % 11 == 0 {
                PodState::NotReady
            } else {
                PodState::Ready
            };
            pods.push(pod(
                &ns,
                &format!("{rs}-{p:05}"),
                Some(("ReplicaSet", &rs)),
                Some(&format!("node-{node:04}")),
                state,
            ));
        }
    }
    let bytes: usize = pods.iter().map(String::len).sum();
    let count = pods.len();
    api.put_bulk("pods", pods);
    println!(
        "audit --cluster: {count} pods ({:.0} MB of JSON), {workloads} Deployments and ReplicaSets, {nodes} nodes; fixtures built in {:.1} s",
        bytes as f64 / 1e6,
        built.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let out = dir.path().join("report.json");
    // `BASELINE_BIN=path/to/old/spreadguard`: an older build measured against the same server
    // in the same run, interleaved with this one (the machine is shared and noisy).
    if let Some(baseline) = std::env::var_os("BASELINE_BIN").map(PathBuf::from) {
        let base_out = dir.path().join("baseline.json");
        for _ in 0..3 {
            println!("  baseline: {}", run(&baseline, &kubeconfig, &base_out));
            println!("  this build: {}", run(&bin, &kubeconfig, &out));
        }
    }
    let mut runs = Vec::new();
    for _ in 0..if full { 3 } else { 1 } {
        let r = run(&bin, &kubeconfig, &out);
        println!("  {r}, {:.1} MB of JSON", r.stdout_bytes as f64 / 1e6);
        assert!(r.exit == 0 || r.exit == 1, "audit failed (exit {})", r.exit);
        runs.push(r);
    }
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), workloads, "every Deployment is judged once");
    let ready: u64 = results
        .iter()
        .map(|r| r["actual"]["ready"].as_u64().unwrap())
        .sum();
    let not_ready = (0..workloads).filter(|w| w % 11 == 0).count();
    assert_eq!(ready as usize, count - not_ready, "every ready pod counted");
    runs.sort_by_key(|r| r.wall);
    let median = &runs[runs.len() / 2];
    println!(
        "audit --cluster median: {:.2} s (target < 10 s; CPU {:.2} s), peak RSS {:.1} MB (target < 250 MB)",
        median.wall.as_secs_f64(),
        median.cpu.as_secs_f64(),
        median.max_rss_kb as f64 / 1024.0
    );
}
