//! The CLI contract of `authd apis|roles|groups` and `users
//! add-role|remove-role|permissions` (being written).
