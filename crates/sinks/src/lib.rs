//! Sinks (roadmap 3): one module and one cargo feature per destination, each implementing the `Sink` port.
//!
//! Not built yet: the delivery issue fills this crate.
