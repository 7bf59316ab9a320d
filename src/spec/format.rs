//! How a source's record bytes are encoded: JSON objects (the default), Protobuf
//! or Avro. Avro and Protobuf writer schemas come from a Confluent-compatible
//! Schema Registry (the Confluent wire format: a zero byte, a 4-byte schema id,
//! for Protobuf the message indexes, then the datum or message) or from one schema
//! file (bare datums or messages). Pure settings: reading them is `decode`'s job.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, Result};

/// The encoding of a source's records.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum SourceFormat {
    /// One JSON object per record.
    #[default]
    Json,
    /// Avro binary datums; their record fields are matched to the declared fields
    /// by name (Avro schema resolution).
    Avro(AvroSchemas),
    /// Protobuf messages of one type (bare, or Confluent-framed with their writer
    /// schema in a registry); their fields are matched to the declared fields by
    /// name.
    Protobuf(ProtobufSchema),
}

/// The message type of a Protobuf source: where its definition comes from, and
/// which message of it the records are.
#[derive(Clone, Debug, PartialEq)]
pub struct ProtobufSchema {
    pub definition: ProtoDefinition,
    /// The message's full name (`shop.Transaction`); `None`: the definition's only
    /// top-level message. With a registry, each record names its message (by
    /// index); then this, if set, is the name it must have (another message is a
    /// `schema_mismatch`).
    pub message: Option<String>,
}

/// Where a Protobuf message type is defined.
#[derive(Clone, Debug, PartialEq)]
pub enum ProtoDefinition {
    /// A `.proto` file, compiled when the job loads (by protox; its imports are
    /// looked up beside it, Google's well-known types are built in).
    File(std::path::PathBuf),
    /// A `.proto` file's text (imports: the well-known types only).
    Text { name: String, text: String },
    /// A compiled `FileDescriptorSet` (`protoc --include_imports
    /// --descriptor_set_out`, `buf build -o`), its bytes.
    DescriptorSet(Vec<u8>),
    /// Confluent wire format: each record names its writer's `.proto` (a schema id
    /// in this registry) and the message in it (message indexes).
    Registry(RegistrySettings),
}

impl ProtobufSchema {
    /// Messages `message` (or the file's only one) of the `.proto` file at `path`.
    pub fn from_file(path: impl Into<std::path::PathBuf>, message: Option<&str>) -> Self {
        ProtobufSchema { definition: ProtoDefinition::File(path.into()), message: message.map(str::to_owned) }
    }
    /// Messages `message` (or the only one) defined by the `.proto` text `text`.
    pub fn from_text(text: &str, message: Option<&str>) -> Self {
        ProtobufSchema { definition: ProtoDefinition::Text { name: "inline.proto".into(), text: text.to_owned() }, message: message.map(str::to_owned) }
    }
    /// Confluent-framed messages whose writer schemas are in the registry
    /// `settings` names; `message`, if given, is the full name every record's
    /// message must have.
    pub fn from_registry(settings: RegistrySettings, message: Option<&str>) -> Self {
        ProtobufSchema { definition: ProtoDefinition::Registry(settings), message: message.map(str::to_owned) }
    }
    /// Messages `message` of a compiled descriptor set file.
    pub fn from_descriptor_set_file(path: &str, message: Option<&str>) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading the descriptor set `{path}`"))?;
        Ok(ProtobufSchema { definition: ProtoDefinition::DescriptorSet(bytes), message: message.map(str::to_owned) })
    }
}

/// Where an Avro source's writer schemas come from.
#[derive(Clone, Debug, PartialEq)]
pub enum AvroSchemas {
    /// Confluent wire format; each record names its writer schema by id.
    Registry(RegistrySettings),
    /// Bare datums, all written with this one schema (its JSON text).
    Fixed { schema: String },
}

impl AvroSchemas {
    /// Bare datums written with the schema in the `.avsc` file at `path`.
    pub fn from_file(path: &str) -> Result<Self> {
        let schema = std::fs::read_to_string(path).with_context(|| format!("reading the Avro schema file `{path}`"))?;
        Ok(AvroSchemas::Fixed { schema })
    }
}

/// How the `scores`, `features` and `drift` topics are written.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum OutputFormat {
    /// JSON, the engine's contract (DESIGN.md).
    #[default]
    Json,
    /// Confluent-framed Avro, the schemas registered under `<topic>-value` in
    /// this registry when the job starts (`crate::output::avro`).
    Avro(RegistrySettings),
}

/// A Confluent-compatible Schema Registry (Confluent's, Apicurio's `ccompat` API,
/// Redpanda's, Karapace).
#[derive(Clone, PartialEq)]
pub struct RegistrySettings {
    /// Base URL, e.g. `http://registry:8081` or `http://host/apis/ccompat/v7`.
    pub url: String,
    /// HTTP basic auth user (Confluent Cloud: the API key).
    pub user: Option<String>,
    /// The basic auth password itself, read from the environment variable that the
    /// job names (never from the job file, never logged).
    pub password: Option<String>,
    /// One request's timeout.
    pub timeout: Duration,
    /// How long a record whose schema cannot be fetched (registry unreachable,
    /// 5xx, 408, 429) waits, retrying, before it is dead-lettered as
    /// `unknown_schema`; the worker reading it waits with it. Then, for 10 s, records
    /// of ids not seen yet go to the dead-letter topic at once.
    pub max_wait: Duration,
}

impl RegistrySettings {
    pub fn new(url: &str) -> Self {
        RegistrySettings {
            url: url.trim_end_matches('/').to_owned(),
            user: None,
            password: None,
            timeout: Duration::from_secs(5),
            max_wait: Duration::from_secs(60),
        }
    }
    /// Basic auth with the password taken from the environment variable `env`.
    pub fn basic_auth_from_env(mut self, user: &str, env: &str) -> Result<Self> {
        let password = std::env::var(env).with_context(|| format!("the registry password variable `{env}` is not set"))?;
        self.user = Some(user.to_owned());
        self.password = Some(password);
        Ok(self)
    }
    pub fn max_wait(mut self, d: Duration) -> Self {
        self.max_wait = d;
        self
    }
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }
}

impl fmt::Debug for RegistrySettings {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("RegistrySettings")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<from the environment>"))
            .field("timeout", &self.timeout)
            .field("max_wait", &self.max_wait)
            .finish()
    }
}
