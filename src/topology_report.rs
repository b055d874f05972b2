//! The zones as spreadguard sees them, as `spreadguard topology` prints them.

use std::fmt::Write as _;

use serde::Serialize;

use crate::engine::Topology;
use crate::engine::topology::ZoneStats;

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
