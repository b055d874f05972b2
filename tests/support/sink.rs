//! A sink that records every published node list, autoscaler index and budget index, for
//! cache tests.

use std::sync::{Arc, Mutex};

use spreadguard::cluster::{CompanionSink, TopologySink};
use spreadguard::engine::{Autoscalers, Budgets, NodeInfo};

/// Collects every published node list and index.
#[derive(Default)]
pub struct Sink {
    pub published: Mutex<Vec<Arc<Vec<NodeInfo>>>>,
    pub autoscalers: Mutex<Vec<Arc<Autoscalers>>>,
    pub budgets: Mutex<Vec<Arc<Budgets>>>,
}

impl TopologySink for Sink {
    fn publish_nodes(&self, nodes: Arc<Vec<NodeInfo>>) {
        self.published.lock().unwrap().push(nodes);
    }
}

impl CompanionSink for Sink {
    fn publish_autoscalers(&self, autoscalers: Arc<Autoscalers>) {
        self.autoscalers.lock().unwrap().push(autoscalers);
    }

    fn publish_budgets(&self, budgets: Arc<Budgets>) {
        self.budgets.lock().unwrap().push(budgets);
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
