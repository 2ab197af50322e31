//! zkop's CloudFormation template, built from typed Rust: the Auto Scaling
//! group of ZooKeeper members, its launch template (IMDSv2), security groups,
//! the id-lease log group, the state table, the backup bucket,
//! least-privilege roles and an optional controller host. `zkop cf render` prints it.

mod backup;
mod clients;
pub mod expr;
mod iam;
pub mod model;
mod parts;
pub mod template;
mod user_data;

pub use template::template;

/// The rendered template's formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON, two-space indented (the checked-in form).
    Json,
    /// YAML.
    Yaml,
}

/// Why the template could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// JSON serialization failed.
    #[error("rendering JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// YAML serialization failed.
    #[error("rendering YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// The template as text, ending in a newline.
pub fn render(format: Format) -> Result<String, RenderError> {
    let t = template();
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(&t)? + "\n",
        Format::Yaml => serde_yaml::to_string(&t)?,
    })
}
