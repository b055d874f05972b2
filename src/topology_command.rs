//! `spreadguard topology`: the zones as spreadguard sees them, from a nodes file or the live
//! cluster. The first thing to run when a decision surprises you.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::ListParams;
use serde::Serialize;

use crate::audit::{Format, load_policy};
use crate::engine::topology::ZoneStats;
use crate::engine::{NodeInfo, Topology, TopologySource};

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

/// One row of the report.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneRow {
    /// `None` for the nodes without a zone label.
    pub zone: Option<String>,
    #[serde(flatten)]
    pub stats: ZoneStats,
}

/// The whole report; `-o json` prints it as is.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopologyReport {
    pub source: String,
    pub zone_key: String,
    pub nodes: usize,
    pub zones: Vec<ZoneRow>,
    pub unzoned_nodes: usize,
}

impl TopologyReport {
    pub fn new(topology: &Topology, source: String) -> Self {
        let summary = topology.summary();
        let mut zones: Vec<ZoneRow> = topology
            .zone_stats()
            .into_iter()
            .map(|(zone, stats)| ZoneRow { zone, stats })
            .collect();
        // The unzoned nodes (sorted first as `None`) go last.
        zones.sort_by_key(|z| z.zone.is_none());
        TopologyReport {
            source,
            zone_key: summary.zone_key,
            nodes: summary.nodes,
            zones,
            unzoned_nodes: summary.unzoned_nodes,
        }
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Zone key: {}  (nodes from {})",
            self.zone_key, self.source
        );
        let width = self
            .zones
            .iter()
            .filter_map(|z| z.zone.as_ref().map(String::len))
            .max()
            .unwrap_or(4)
            .max(10);
        let _ = writeln!(
            out,
            "{:<width$}  {:>5}  {:>11}  {:>7}",
            "ZONE", "NODES", "SCHEDULABLE", "TAINTED"
        );
        for z in &self.zones {
            let name = z.zone.as_deref().unwrap_or("(no zone)");
            let s = &z.stats;
            let _ = writeln!(
                out,
                "{name:<width$}  {:>5}  {:>11}  {:>7}",
                s.nodes, s.schedulable, s.tainted
            );
        }
        let zoned = self.zones.iter().filter(|z| z.zone.is_some()).count();
        let _ = writeln!(
            out,
            "{} nodes in {zoned} zone{}, {} without a zone label",
            self.nodes,
            if zoned == 1 { "" } else { "s" },
            self.unzoned_nodes
        );
        if zoned < 2 {
            let _ = writeln!(
                out,
                "Fewer than 2 zones: zone HA is impossible here (HA009); only node spread is injected."
            );
        }
        out
    }
}

pub fn run(args: TopologyArgs) -> anyhow::Result<i32> {
    let policy = load_policy(args.config.as_ref())?;
    let (nodes, source): (Vec<NodeInfo>, String) = match &args.nodes {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
            let nodes =
                crate::nodes::parse_nodes(&text).with_context(|| path.display().to_string())?;
            (nodes, path.display().to_string())
        }
        None => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let nodes = runtime.block_on(async {
                let client = crate::cluster::client(args.kubeconfig.as_deref()).await?;
                let list = Api::<Node>::all(client)
                    .list(&ListParams::default())
                    .await
                    .context("listing nodes")?;
                anyhow::Ok(
                    list.items
                        .iter()
                        .map(crate::cluster::node_info)
                        .collect::<Vec<_>>(),
                )
            })?;
            (nodes, "the cluster".to_owned())
        }
    };
    let topology = Topology::from_nodes(nodes, &policy);
    debug_assert_eq!(topology.source(), TopologySource::Nodes);
    let report = TopologyReport::new(&topology, source);
    match args.output {
        Format::Json => crate::output::print(&(serde_json::to_string_pretty(&report)? + "\n"))?,
        Format::Table => crate::output::print(&report.to_table())?,
    }
    Ok(0)
}
