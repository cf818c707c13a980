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
    /// The trust store could not be built.
    #[error("{origin}: trust: {source}")]
    Trust {
        /// The config file.
        origin: String,
        /// The cause.
        #[source]
        source: Box<crate::policy::bundle::TrustError>,
    },
    /// A policy bundle was refused, failed to compile or to start.
    #[error("{origin}: {source}")]
    Registry {
        /// The config file.
        origin: String,
        /// The cause.
        #[source]
        source: Box<crate::policy::registry::RegistryError>,
    },
    /// The admin API or the policy directory watcher could not start.
    #[error("{origin}: admin: {source}")]
    Admin {
        /// The config file.
        origin: String,
        /// The cause.
        #[source]
        source: Box<crate::admin::AdminError>,
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
