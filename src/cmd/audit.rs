//! `spreadguard audit`: the engine over manifest files (or a live cluster) and a node
//! snapshot, so that CI sees exactly what the webhook would decide.

use std::io::IsTerminal;
use std::path::PathBuf;

use super::ExitCode;
use crate::audit::formats::policy_report::{self, Flavour};
use crate::audit::formats::sarif;
use crate::audit::{Report, cluster};
use crate::engine::Topology;
use crate::load;

/// Arguments of `spreadguard audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Manifest files or directories (recursive: .yaml, .yml, .json); `-` reads stdin.
    #[arg(required_unless_present = "cluster", conflicts_with = "cluster")]
    pub paths: Vec<PathBuf>,
    /// Audit the workloads of a live cluster instead (list only: Deployments, StatefulSets,
    /// ReplicaSets, Pods, HPAs, PDBs, Nodes, Namespaces, StorageClasses,
    /// PersistentVolumeClaims, PersistentVolumes and Karpenter NodePools, and Rollouts,
    /// CloneSets, Advanced StatefulSets and the policy's workloadKinds where served), with its
    /// own nodes, namespace labels and storage.
    #[arg(long, env = "SPREADGUARD_CLUSTER")]
    pub cluster: bool,
    /// Kubeconfig for `--cluster` [default: in-cluster service account, then KUBECONFIG].
    #[arg(long, env = "SPREADGUARD_KUBECONFIG", requires = "cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// Nodes file (`kubectl get nodes -o yaml`; NodePools, StorageClasses and
    /// PersistentVolumes may stand beside the Nodes). Without it the policy's assumedZones are
    /// used.
    #[arg(long, env = "SPREADGUARD_NODES")]
    pub nodes: Option<PathBuf>,
    /// Policy file (YAML). Without it the defaults apply.
    #[arg(long, env = "SPREADGUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table, env = "SPREADGUARD_OUTPUT")]
    pub output: Format,
    /// Colour in the table output: auto (only on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, default_value_t = Color::Auto, env = "SPREADGUARD_COLOR")]
    pub color: Color,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    /// `openreports.io/v1alpha1` Report objects, one per namespace (YAML stream).
    Openreports,
    /// `wgpolicyk8s.io/v1alpha2` PolicyReport objects, one per namespace (YAML stream).
    Policyreport,
    /// SARIF 2.1.0, for CI code scanning.
    Sarif,
    /// The posture page: one self-contained HTML file with the JSON document inlined.
    Html,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// Exit codes of `spreadguard audit`.
pub mod exit {
    /// No deny finding.
    pub const CLEAN: i32 = 0;
    /// At least one deny finding.
    pub const DENIED: i32 = 1;
    /// Unusable input or arguments.
    pub const UNUSABLE: i32 = 2;
}

/// Runs the audit and prints the report; returns the process exit code. Errors (exit 2)
/// happen before anything is printed.
pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    if args.cluster {
        crate::allocator::purge_eagerly();
    } else {
        crate::allocator::keep_freed_memory();
    }
    let policy = load::policy_file(args.config.as_deref())?;
    let report = if args.cluster {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let progress = progress_bar(args.output);
        let nodes_file = args.nodes.as_deref().map(load::nodes_file).transpose()?;
        let report = runtime.block_on(async {
            let client = crate::cluster::client(args.kubeconfig.as_deref()).await?;
            cluster::report(&client, &policy, nodes_file, |listed, total| {
                if let Some(total) = total {
                    progress.set_length(total);
                }
                progress.set_position(listed as u64);
            })
            .await
        })?;
        progress.finish_and_clear();
        report
    } else {
        let file = args.nodes.as_deref().map(load::nodes_file).transpose()?;
        let docs = load::manifests(&args.paths)?;
        // NodePools and storage objects among the manifests count as if they were in the
        // cluster, beside those of the nodes file.
        let mut inventory = load::inventory_of(&docs)?;
        let topology = match file {
            Some(file) => {
                inventory.volumes.extend(file.volumes);
                inventory.pools.extend(file.pools);
                Topology::from_parts(file.nodes, inventory.pools, &policy)
            }
            None => Topology::assumed(&policy),
        };
        let volumes = (!inventory.volumes.is_empty()).then_some(&inventory.volumes);
        let report = Report::build_with(
            &docs,
            &topology,
            &policy,
            volumes.map(|v| v as &dyn crate::engine::storage::Volumes),
        );
        std::mem::forget(docs); // see below
        report
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let text = match args.output {
        // Written as it is serialised: a cluster's report can be tens of MB.
        Format::Json => None,
        Format::Html => Some(crate::posture::html(&report)),
        Format::Openreports => Some(policy_report::to_yaml(&policy_report::objects(
            &report,
            Flavour::OpenReports,
            now,
        ))),
        Format::Policyreport => Some(policy_report::to_yaml(&policy_report::objects(
            &report,
            Flavour::PolicyReport,
            now,
        ))),
        Format::Sarif => Some(sarif::to_json(&report)),
        Format::Table => {
            let color = match args.color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => {
                    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
                }
            };
            Some(report.to_table(color))
        }
    };
    match &text {
        Some(text) => crate::output::print(text)?,
        None => crate::output::print_with(|out| crate::posture::write_document(&report, out))?,
    }
    let denies = report.denies();
    // The process ends now: freeing thousands of documents one by one is wasted time.
    std::mem::forget(report);
    std::mem::forget(text);
    Ok(if denies { exit::DENIED } else { exit::CLEAN })
}

/// A progress bar for listing pods: only for the table on a terminal (never in machine
/// output, never when stdout is a pipe), drawn on stderr.
fn progress_bar(output: Format) -> indicatif::ProgressBar {
    if output != Format::Table || !std::io::stdout().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("listing pods {pos}/{len} {wide_bar} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
