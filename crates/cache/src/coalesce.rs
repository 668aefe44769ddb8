//! Request coalescing: concurrent misses for one key make one origin request. The first
//! becomes the leader and fetches; the others wait (bounded) for its outcome. If the leader
//! stored a response, they look it up; if the answer was not storable (or the leader gave
//! up), they are released at once to go to the origin themselves, so an uncacheable URL is
//! never served one request at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

/// How a leader's fetch ended, as its followers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still fetching.
    Pending,
    /// A response was stored: look it up.
    Stored,
    /// Nothing was stored (uncacheable, failed, or the leader went away): fetch yourself.
    Released,
}

/// The fetches in flight, by key.
#[derive(Debug, Default)]
pub struct Coalescer {
    flights: Mutex<HashMap<String, watch::Receiver<Outcome>>>,
}

/// What a request that missed should do.
pub enum Role {
    /// Fetch from the origin, then [`Leader::finish`].
    Leader(Leader),
    /// Wait for the leader with [`Follower::wait`].
    Follower(Follower),
}

/// The request fetching for everyone. Dropping it without finishing releases the followers.
pub struct Leader {
    key: String,
    coalescer: Arc<Coalescer>,
    done: watch::Sender<Outcome>,
    finished: bool,
}

/// A request waiting for a leader.
pub struct Follower {
    outcome: watch::Receiver<Outcome>,
}

impl Coalescer {
    /// Joins the fetch for `key`, leading it if there is none.
    pub fn join(self: &Arc<Self>, key: &str) -> Role {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(outcome) = flights.get(key)
            && *outcome.borrow() == Outcome::Pending
        {
            return Role::Follower(Follower {
                outcome: outcome.clone(),
            });
        }
        let (done, outcome) = watch::channel(Outcome::Pending);
        flights.insert(key.to_owned(), outcome);
        Role::Leader(Leader {
            key: key.to_owned(),
            coalescer: self.clone(),
            done,
            finished: false,
        })
    }

    /// Fetches in flight now.
    pub fn in_flight(&self) -> usize {
        self.flights.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Leader {
    /// Tells the followers how the fetch ended (`Stored` or `Released`).
    pub fn finish(mut self, outcome: Outcome) {
        self.end(outcome);
    }

    fn end(&mut self, outcome: Outcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        let mut flights = self
            .coalescer
            .flights
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        flights.remove(&self.key);
        drop(flights);
        self.done.send_replace(outcome);
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.end(Outcome::Released);
    }
}

impl Follower {
    /// Waits up to `limit` for the leader; `Released` if it takes longer.
    pub async fn wait(mut self, limit: Duration) -> Outcome {
        let ended = self
            .outcome
            .wait_for(|outcome| *outcome != Outcome::Pending);
        match tokio::time::timeout(limit, ended).await {
            Ok(Ok(outcome)) => *outcome,
            _ => Outcome::Released,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(role: Role) -> Leader {
        match role {
            Role::Leader(leader) => leader,
            Role::Follower(_) => panic!("expected to lead"),
        }
    }

    fn follower(role: Role) -> Follower {
        match role {
            Role::Follower(follower) => follower,
            Role::Leader(_) => panic!("expected to follow"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_leads_the_rest_follow_and_see_the_outcome() {
        let coalescer = Arc::new(Coalescer::default());
        let first = leader(coalescer.join("k"));
        let waiting: Vec<_> = (0..3)
            .map(|_| tokio::spawn(follower(coalescer.join("k")).wait(Duration::from_secs(5))))
            .collect();
        assert_eq!(coalescer.in_flight(), 1);
        first.finish(Outcome::Stored);
        for waiter in waiting {
            assert_eq!(waiter.await.unwrap(), Outcome::Stored);
        }
        assert_eq!(coalescer.in_flight(), 0);
        // The next miss leads a new fetch.
        leader(coalescer.join("k"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_that_goes_away_releases_its_followers() {
        let coalescer = Arc::new(Coalescer::default());
        let first = leader(coalescer.join("k"));
        let waiting = tokio::spawn(follower(coalescer.join("k")).wait(Duration::from_secs(5)));
        drop(first);
        assert_eq!(waiting.await.unwrap(), Outcome::Released);
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_stops_waiting_at_its_limit() {
        let coalescer = Arc::new(Coalescer::default());
        let _first = leader(coalescer.join("k"));
        let outcome = follower(coalescer.join("k"))
            .wait(Duration::from_millis(100))
            .await;
        assert_eq!(outcome, Outcome::Released);
    }

    #[tokio::test(start_paused = true)]
    async fn other_keys_do_not_wait() {
        let coalescer = Arc::new(Coalescer::default());
        let _a = leader(coalescer.join("a"));
        leader(coalescer.join("b"));
    }
}
