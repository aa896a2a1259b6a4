//! Projections (roadmap 2): each defines how a decoded event changes its tables and how that change is
//! undone; the Gemforce built-ins (trade deals, listings, mints, carbon credits, identities, facets) live here.
//!
//! Not built yet: the indexer issue fills this crate.
