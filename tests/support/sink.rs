//! A topology sink that records every published node list, for cache tests.

use std::sync::{Arc, Mutex};

use spreadguard::cluster::TopologySink;
use spreadguard::engine::NodeInfo;

/// Collects every published node list.
#[derive(Default)]
pub struct Sink {
    pub published: Mutex<Vec<Arc<Vec<NodeInfo>>>>,
}

impl TopologySink for Sink {
    fn publish_nodes(&self, nodes: Arc<Vec<NodeInfo>>) {
        self.published.lock().unwrap().push(nodes);
    }
}

impl Sink {
    pub fn count(&self) -> usize {
        self.published.lock().unwrap().len()
    }

    pub fn latest(&self) -> Option<Arc<Vec<NodeInfo>>> {
        self.published.lock().unwrap().last().cloned()
    }

    /// The zone label of `node` in the latest snapshot.
    pub fn zone_of(&self, node: &str, key: &str) -> Option<String> {
        self.latest()?
            .iter()
            .find(|n| n.name == node)
            .and_then(|n| n.labels.get(key).cloned())
    }
}
