//! A call: its record, the pure reducer that folds events into it, and the effects it emits.

mod effect;
mod record;
mod reducer;

pub use effect::{
    Effect, action_dispatch_id, escalation_dispatch_id, finalize_dispatch_id, update_dispatch_id,
};
pub use record::{ActionRequest, CallRecord, CallStatus, ErrorReport, Source};
pub use reducer::{apply, apply_all};
