//! [`PipelineError`]: why a pipeline could not start.

/// Why a pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The WebAssembly engine could not start.
    #[error("starting the WebAssembly engine: {source}")]
    Engine {
        /// The cause.
        #[source]
        source: crate::engine::EngineError,
    },
    /// A policy module could not be read.
    #[error("{origin}: policies[{index}].module: cannot read {path}: {source}")]
    ReadModule {
        /// The config file.
        origin: String,
        /// The policy's position in the chain.
        index: usize,
        /// The module path.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A policy module was refused or failed to compile.
    #[error("{origin}: policies[{index}].module: {source}")]
    Load {
        /// The config file.
        origin: String,
        /// The policy's position in the chain.
        index: usize,
        /// The cause.
        #[source]
        source: Box<crate::policy::LoadError>,
    },
    /// A policy refused its parameters or failed to start.
    #[error("{origin}: policies[{index}].params: {source}")]
    Init {
        /// The config file.
        origin: String,
        /// The policy's position in the chain.
        index: usize,
        /// The cause.
        #[source]
        source: Box<crate::policy::PolicyError>,
    },
    /// A source could not open.
    #[error("{origin}: sources.{name}: {source}")]
    Source {
        /// The config file.
        origin: String,
        /// The source's name.
        name: String,
        /// The cause.
        #[source]
        source: Box<crate::sources::SourceError>,
    },
    /// A sink could not open.
    #[error("{origin}: sinks.{name}: {source}")]
    Sink {
        /// The config file.
        origin: String,
        /// The sink's name (`dead_letter` for the dead-letter sink).
        name: String,
        /// The cause.
        #[source]
        source: Box<crate::sinks::SinkError>,
    },
}
