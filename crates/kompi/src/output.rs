//! The CLI's structured output: tables for people, JSON and YAML for programs.

use clap::ValueEnum;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Prints a value as JSON or YAML (tables are each command's own).
pub fn print_structured<T: Serialize>(value: &T, format: Format) -> anyhow::Result<()> {
    let json = serde_json::to_value(value)?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&json)?),
        _ => print!("{}", kompi_render::to_yaml(&json)),
    }
    Ok(())
}
