//! Before a drill touches anything: which cluster, which endpoints to take out, and whether
//! there is a standby to fail over to. Every refusal says what was found and what to do.

use super::admin::{ClusterView, EndpointView};

/// What the drill will do to one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The cluster.
    pub cluster: String,
    /// The priority group traffic goes to now.
    pub original_priority: u32,
    /// Its healthy endpoints: the ones taken out and put back.
    pub endpoints: Vec<String>,
    /// `auto` or `manual`.
    pub failback: String,
}

impl Plan {
    /// Whether traffic returns only when asked (`POST /clusters/{c}/failback`).
    pub fn manual_failback(&self) -> bool {
        self.failback == "manual"
    }

    /// The plan for drilling `name`, from `GET /clusters` of the proxy at `admin`.
    pub fn new(clusters: &[ClusterView], name: &str, admin: &str) -> Result<Plan, String> {
        let Some(cluster) = clusters.iter().find(|c| c.name == name) else {
            let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
            return Err(format!(
                "the proxy at {admin} has no cluster {name:?} (clusters: {}); pass one of them to --cluster",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ));
        };
        let mut priorities: Vec<u32> = cluster.endpoints.iter().map(|e| e.priority).collect();
        priorities.sort_unstable();
        priorities.dedup();
        if priorities.len() < 2 {
            return Err(format!(
                "cluster {name:?} has a single priority group (every endpoint has priority {}): \
                 there is no standby to fail over to; give standby endpoints \"priority: 1\" in the config",
                priorities.first().copied().unwrap_or(0)
            ));
        }
        let Some(original) = cluster.active_priority else {
            return Err(format!(
                "cluster {name:?} has no available endpoint now (active_priority is null), so there \
                 is nothing to fail over from; endpoints: {}",
                describe(&cluster.endpoints)
            ));
        };
        let endpoints: Vec<String> = cluster
            .endpoints
            .iter()
            .filter(|e| e.priority == original && e.state == "healthy")
            .map(|e| e.address.clone())
            .collect();
        let standby = cluster
            .endpoints
            .iter()
            .filter(|e| e.priority != original)
            .collect::<Vec<_>>();
        if !standby.iter().any(|e| e.state == "healthy") {
            return Err(format!(
                "cluster {name:?}: no endpoint outside priority group {original} is healthy ({}), so \
                 taking group {original} out would stop its traffic instead of failing it over; \
                 bring a standby up first",
                standby
                    .iter()
                    .map(|e| describe_one(e))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        Ok(Plan {
            cluster: name.to_owned(),
            original_priority: original,
            endpoints,
            failback: cluster.failback.clone(),
        })
    }
}

/// `address (priority p) state: reason` for each endpoint.
pub fn describe(endpoints: &[EndpointView]) -> String {
    endpoints
        .iter()
        .map(describe_one)
        .collect::<Vec<_>>()
        .join("; ")
}

fn describe_one(e: &EndpointView) -> String {
    if e.reason.is_empty() {
        format!("{} (priority {}) {}", e.address, e.priority, e.state)
    } else {
        format!(
            "{} (priority {}) {}: {}",
            e.address, e.priority, e.state, e.reason
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(address: &str, priority: u32, state: &str) -> EndpointView {
        EndpointView {
            address: address.to_owned(),
            priority,
            state: state.to_owned(),
            reason: String::new(),
            requests: 0,
        }
    }

    fn cluster(active: Option<u32>, endpoints: Vec<EndpointView>) -> Vec<ClusterView> {
        vec![ClusterView {
            name: "checkout".to_owned(),
            active_priority: active,
            failback: "auto".to_owned(),
            endpoints,
        }]
    }

    #[test]
    fn the_healthy_endpoints_of_the_active_group_are_taken_out() {
        let clusters = cluster(
            Some(0),
            vec![
                endpoint("10.0.0.1:80", 0, "healthy"),
                endpoint("10.0.0.2:80", 0, "draining"),
                endpoint("10.0.0.3:80", 1, "healthy"),
            ],
        );
        let plan = Plan::new(&clusters, "checkout", "http://a").unwrap();
        assert_eq!(plan.original_priority, 0);
        assert_eq!(plan.endpoints, ["10.0.0.1:80"]);
        assert!(!plan.manual_failback());
    }

    #[test]
    fn an_unknown_cluster_is_refused_naming_the_clusters() {
        let clusters = cluster(Some(0), vec![endpoint("10.0.0.1:80", 0, "healthy")]);
        let error = Plan::new(&clusters, "chekout", "http://a").unwrap_err();
        assert!(
            error.contains("\"chekout\"") && error.contains("clusters: checkout"),
            "{error}"
        );
    }

    #[test]
    fn a_single_group_has_nothing_to_fail_over_to() {
        let clusters = cluster(
            Some(0),
            vec![
                endpoint("10.0.0.1:80", 0, "healthy"),
                endpoint("10.0.0.2:80", 0, "healthy"),
            ],
        );
        let error = Plan::new(&clusters, "checkout", "http://a").unwrap_err();
        assert!(error.contains("single priority group"), "{error}");
    }

    #[test]
    fn no_healthy_standby_or_no_active_group_is_refused() {
        let clusters = cluster(
            Some(0),
            vec![
                endpoint("10.0.0.1:80", 0, "healthy"),
                endpoint("10.0.0.3:80", 1, "unhealthy"),
            ],
        );
        let error = Plan::new(&clusters, "checkout", "http://a").unwrap_err();
        assert!(
            error.contains("10.0.0.3:80 (priority 1) unhealthy"),
            "{error}"
        );
        let clusters = cluster(
            None,
            vec![
                endpoint("10.0.0.1:80", 0, "unhealthy"),
                endpoint("10.0.0.3:80", 1, "unhealthy"),
            ],
        );
        let error = Plan::new(&clusters, "checkout", "http://a").unwrap_err();
        assert!(error.contains("active_priority is null"), "{error}");
    }
}
