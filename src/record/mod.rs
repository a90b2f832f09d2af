//! Recorded calls and what is done with them: the field-by-field comparison
//! of two answers (`compare`) that replay and shadow variants share.

pub mod compare;
