//! keygate
