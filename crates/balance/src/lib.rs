//! Endpoint pickers for watertight's clusters, and consistent hashing ([`hashing`]).
//!
//! A cluster asks its picker for an endpoint index on every request. Pickers here are pure:
//! no I/O, no clock, no hidden randomness (callers pass random numbers in), so the same inputs
//! give the same answer in every process and every test.
//!
//! ```
//! use watertight_balance::{LeastRequest, WeightedRoundRobin};
//!
//! let rr = WeightedRoundRobin::new(&[2, 1]);
//! let picks: Vec<usize> = (0..3).map(|turn| rr.pick(turn)).collect();
//! assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 2);
//!
//! let lr = LeastRequest::new(&[1, 1]);
//! // Endpoint 1 has fewer requests in flight, so it wins whichever two are drawn.
//! let in_flight = [5, 0];
//! assert_eq!(lr.pick(|i| in_flight[i], 0, 1), 1);
//! ```

pub mod hashing;
mod least_request;
mod peak_ewma;
mod round_robin;

pub use least_request::LeastRequest;
pub use peak_ewma::PeakEwma;
pub use round_robin::WeightedRoundRobin;
