//! A call: its record, the pure reducer that folds events into it, and the effects it emits.

mod applied;
mod effect;
mod facts;
mod record;
mod reducer;
pub mod stale;

pub use applied::AppliedEvents;
pub use effect::{
    Effect, action_dispatch_id, escalation_dispatch_id, finalize_dispatch_id, update_dispatch_id,
};
pub use facts::{LARGE_FACT_BYTES, referenced_event};
pub use record::{ActionRequest, CallRecord, CallStatus, ErrorReport, Source};
pub use reducer::{MAX_LISTED, apply, apply_all};
pub use stale::FinalState;
