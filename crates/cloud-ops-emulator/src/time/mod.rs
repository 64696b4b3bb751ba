//! Time: protobuf timestamps and the emulator's time scale.
//!
//! - [`timestamp`]: conversions between protobuf timestamps, nanoseconds
//!   and RFC 3339 text.
//! - [`scale`]: running monitoring time faster than real time.

pub mod scale;
pub mod timestamp;
