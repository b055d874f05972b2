//! `spreadguard topology`: the zones as spreadguard sees them, from a nodes file or the live
//! cluster. The first thing to run when a decision surprises you.

use std::path::PathBuf;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::ListParams;

use super::ExitCode;
use crate::engine::templates::NodeTemplate;
use crate::engine::{NodeInfo, Topology};
use crate::load;
use crate::topology_report::TopologyReport;

/// Arguments of `spreadguard topology`.
#[derive(Debug, clap::Args)]
pub struct TopologyArgs {
    /// Nodes file (`kubectl get nodes -o yaml`); without it the cluster is asked.
    #[arg(long, env = "SPREADGUARD_NODES")]
    pub nodes: Option<PathBuf>,
    /// Kubeconfig for the cluster; default: in-cluster service account, then KUBECONFIG.
    #[arg(long, env = "SPREADGUARD_KUBECONFIG", conflicts_with = "nodes")]
    pub kubeconfig: Option<PathBuf>,
    /// Policy file: its zoneLabels decide which label is the zone key.
    #[arg(long, env = "SPREADGUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table, env = "SPREADGUARD_OUTPUT")]
    pub output: Format,
}

pub fn run(args: TopologyArgs) -> anyhow::Result<ExitCode> {
    let policy = load::policy_file(args.config.as_deref())?;
    let (nodes, pools, source): (Vec<NodeInfo>, Vec<NodeTemplate>, String) = match &args.nodes {
        Some(path) => {
            let inv = load::nodes_file(path)?;
            (inv.nodes, inv.pools, path.display().to_string())
        }
        None => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (nodes, pools) = runtime.block_on(async {
                let client = crate::cluster::client(args.kubeconfig.as_deref()).await?;
                let list = Api::<Node>::all(client.clone())
                    .list(&ListParams::default())
                    .await
                    .context("listing nodes")?;
                let pools = crate::audit::cluster::node_pools(&client).await?;
                anyhow::Ok((
                    list.items
                        .iter()
                        .map(crate::cluster::node_info)
                        .collect::<Vec<_>>(),
                    pools,
                ))
            })?;
            (nodes, pools, "the cluster".to_owned())
        }
    };
    let topology = Topology::from_parts(nodes, pools, &policy);
    let report = TopologyReport::new(&topology, source);
    match args.output {
        Format::Json => crate::output::print(&(serde_json::to_string_pretty(&report)? + "\n"))?,
        Format::Table => crate::output::print(&report.to_table())?,
    }
    Ok(0)
}

/// `topology`'s output formats (audit's report formats do not apply to a topology).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}
