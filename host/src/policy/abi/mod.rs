//! The host side of the policy ABI (guest-sdk/ABI.md): declared columns as Arrow types, writing
//! projected input into guest memory, and reading back guest output without trusting any of it.

mod declared;
mod input_writer;
mod output_reader;

pub use declared::{DeclaredColumn, DeclaredSchema, arrow_type};
pub use input_writer::{InputError, InputPlan};
pub use output_reader::{
    Assembled, OutputAssembler, OutputCheck, OutputError, read_message, read_result,
};
