//! The zones as spreadguard sees them, as `spreadguard topology` prints them.

use std::fmt::Write as _;

use serde::Serialize;

use crate::engine::Topology;
use crate::engine::topology::{TemplateSummary, ZoneStats};

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
    /// Node templates: nodes node pools can add (none of them exists now), apart from the
    /// nodes. A zone only templates reach is a row with 0 nodes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_templates: Vec<TemplateSummary>,
}

impl TopologyReport {
    pub fn new(topology: &Topology, source: String) -> Self {
        let summary = topology.summary();
        let mut stats = topology.zone_stats();
        // Zones only node templates reach: rows with no node.
        for zone in summary.zones.keys() {
            stats.entry(Some(zone.clone())).or_default();
        }
        let mut zones: Vec<ZoneRow> = stats
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
            node_templates: summary.node_templates,
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
        if !self.node_templates.is_empty() {
            let _ = writeln!(
                out,
                "\nNode templates (nodes a pool can add; none of them exists now):"
            );
            let width = self
                .node_templates
                .iter()
                .map(|t| t.name.len())
                .max()
                .unwrap_or(4)
                .max(8);
            let _ = writeln!(
                out,
                "{:<width$}  {:<15}  {:<10}  TAINTS",
                "TEMPLATE", "SOURCE", "ZONE"
            );
            for t in &self.node_templates {
                let source = match t.source {
                    crate::engine::templates::TemplateSource::Policy => "policy",
                    crate::engine::templates::TemplateSource::NodePool => "NodePool",
                };
                let zone = t.zone.as_deref().unwrap_or("(any)");
                let taints = if t.taints.is_empty() {
                    "-".to_owned()
                } else {
                    t.taints.join(",")
                };
                let limit = if t.exhausted { "  (limit reached)" } else { "" };
                let _ = writeln!(
                    out,
                    "{:<width$}  {source:<15}  {zone:<10}  {taints}{limit}",
                    t.name
                );
            }
            let growable: Vec<&str> = self
                .zones
                .iter()
                .filter(|z| z.stats.nodes == 0)
                .filter_map(|z| z.zone.as_deref())
                .collect();
            if !growable.is_empty() {
                let _ = writeln!(
                    out,
                    "Zones with no node now that a node pool can add one: {}",
                    growable.join(", ")
                );
            }
        }
        if zoned < 2 {
            let _ = writeln!(
                out,
                "Fewer than 2 zones: zone HA is impossible here (HA009); only node spread is injected."
            );
        }
        out
    }
}
