//! One module per endpoint of a sample service; [`crate::router`] picks among them.

pub(crate) mod bytes;
pub(crate) mod delay;
pub(crate) mod echo;
pub(crate) mod fault;
pub(crate) mod status;
pub(crate) mod upload;
