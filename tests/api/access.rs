//! APIs, roles and groups (being written).
