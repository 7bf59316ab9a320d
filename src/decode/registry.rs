//! A client for a Confluent-compatible Schema Registry's REST API: the writer
//! schema of an id (`GET /schemas/ids/{id}`) for sources (Avro and Protobuf), and
//! registering a schema under a subject (`POST /subjects/{subject}/versions`) for
//! producers and tests.
//!
//! A fetch that fails for a reason that may pass (the registry unreachable, a 5xx,
//! a timeout) is retried with backoff up to the source's `max_wait`; one that will
//! not pass (404: no such id; 401/403: credentials) is answered at once. The
//! password is sent as HTTP basic auth and appears in no message (nor does any
//! `user:password@` in the URL).

use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;

use crate::spec::RegistrySettings;

/// The kinds of schema a registry holds that vigil reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaType {
    /// Avro (a JSON schema); the registry's default type.
    Avro,
    /// Protobuf (a `.proto` file's text).
    Protobuf,
}

impl SchemaType {
    /// The name the registry's API gives it (`schemaType`).
    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }
}

#[derive(Deserialize)]
struct Reference {
    name: String,
}

/// Why a schema could not be had.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetch {
    /// The registry answered that it has no such schema (or not one of the type wanted).
    Unknown(String),
    /// The registry could not be reached, or kept failing, for the whole wait.
    Unavailable(String),
}

#[derive(Deserialize)]
struct SchemaById {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Reference>,
}

/// One registry, as the source's settings name it.
pub struct Registry {
    settings: RegistrySettings,
    agent: ureq::Agent,
    auth: Option<String>,
    /// The URL as messages show it (any `user:password@` hidden).
    shown: String,
}

/// `url` with its user info, if any, hidden.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme && !url[scheme + 3..at].contains('/') => format!("{}***{}", &url[..scheme + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

impl Registry {
    pub fn new(settings: &RegistrySettings) -> Registry {
        let config = ureq::Agent::config_builder().timeout_global(Some(settings.timeout)).http_status_as_error(false).build();
        let auth = settings.user.as_ref().map(|user| {
            let pair = format!("{user}:{}", settings.password.as_deref().unwrap_or(""));
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
        });
        Registry { shown: redact(&settings.url), settings: settings.clone(), agent: config.into(), auth }
    }

    /// The registry's URL, user info hidden.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// The Avro schema (its JSON text) registered under `id`.
    pub fn schema(&self, id: u32) -> Result<String, Fetch> {
        self.schema_of(id, SchemaType::Avro)
    }

    /// The schema of type `want` registered under `id`: Avro's JSON text or a
    /// `.proto` file's text. A schema of another type, or one that refers to other
    /// subjects' schemas, is `Unknown` (Protobuf's imports of Google's well-known
    /// types excepted: those are built in).
    pub fn schema_of(&self, id: u32, want: SchemaType) -> Result<String, Fetch> {
        let url = format!("{}/schemas/ids/{id}", self.settings.url);
        let started = Instant::now();
        let mut pause = Duration::from_millis(100);
        let mut last_warned: Option<Instant> = None;
        loop {
            let failure = match self.get(&url) {
                Ok((200, body)) => {
                    let parsed: SchemaById =
                        serde_json::from_str(&body).map_err(|e| Fetch::Unknown(format!("the registry's answer for schema id {id} does not read: {e}")))?;
                    let built_in = |r: &Reference| want == SchemaType::Protobuf && r.name.starts_with("google/protobuf/");
                    let found = parsed.schema_type.as_deref().unwrap_or("AVRO");
                    return match parsed.references.iter().find(|r| !built_in(r)) {
                        Some(r) => Err(Fetch::Unknown(format!(
                            "schema id {id} refers to another schema (`{}`), and vigil does not resolve schema references yet",
                            r.name
                        ))),
                        None if found == want.name() => Ok(parsed.schema),
                        None => Err(Fetch::Unknown(format!("schema id {id} is a schema of type {found}, and this source reads {}", want.name()))),
                    };
                }
                Ok((404, _)) => return Err(Fetch::Unknown(format!("the registry at {} has no schema id {id}", self.shown))),
                Ok((code @ (401 | 403), _)) => {
                    tracing::error!(registry = %self.shown, code, "the schema registry refuses the source's credentials");
                    return Err(Fetch::Unknown(format!("the registry refused the credentials (HTTP {code}) for schema id {id}")));
                }
                // timeouts and rate limits pass, as 5xx do
                Ok((code @ (408 | 429), _)) => format!("HTTP {code}"),
                Ok((code, body)) if code < 500 => return Err(Fetch::Unknown(format!("the registry answered HTTP {code} for schema id {id}: {:.200}", body))),
                Ok((code, _)) => format!("HTTP {code}"),
                Err(e) => e,
            };
            let waited = started.elapsed();
            if waited >= self.settings.max_wait {
                return Err(Fetch::Unavailable(format!("the registry at {} failed for {:.0?} ({failure}) fetching schema id {id}", self.shown, waited)));
            }
            if last_warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                tracing::warn!(registry = %self.shown, id, error = %failure, waited = ?waited, "schema registry unavailable; the source waits and retries");
                last_warned = Some(Instant::now());
            }
            std::thread::sleep(pause.min(self.settings.max_wait.saturating_sub(waited)));
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Registers `schema` (Avro JSON) under `subject`; the id the registry gives it
    /// (the same id again for a schema it already holds). Producers and tests.
    pub fn register(&self, subject: &str, schema: &str) -> anyhow::Result<u32> {
        self.register_as(subject, schema, SchemaType::Avro)
    }

    /// Registers `schema` of type `ty` under `subject` (see [`Registry::register`]).
    /// A failure that may pass (unreachable, 5xx, 408, 429) is retried with
    /// backoff up to `max_wait`; a refusal (an incompatible schema, bad
    /// credentials) is answered at once, with the registry's message.
    pub fn register_as(&self, subject: &str, schema: &str, ty: SchemaType) -> anyhow::Result<u32> {
        #[derive(Deserialize)]
        struct Id {
            id: u32,
        }
        let url = format!("{}/subjects/{subject}/versions", self.settings.url);
        let body = match ty {
            SchemaType::Avro => serde_json::json!({ "schema": schema }),
            SchemaType::Protobuf => serde_json::json!({ "schema": schema, "schemaType": ty.name() }),
        }
        .to_string();
        let started = Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            let failure = match self.post(&url, &body) {
                Ok((200, text)) => {
                    let id = serde_json::from_str::<Id>(&text)
                        .map_err(|e| anyhow::anyhow!("the registry's answer registering under `{subject}` does not read: {e}"))?;
                    return Ok(id.id);
                }
                Ok((code @ (408 | 429), _)) => format!("HTTP {code}"),
                Ok((code, text)) if code < 500 => anyhow::bail!("registering under `{subject}` at {}: HTTP {code}: {text:.300}", self.shown),
                Ok((code, _)) => format!("HTTP {code}"),
                Err(e) => e,
            };
            let waited = started.elapsed();
            if waited >= self.settings.max_wait {
                anyhow::bail!("registering under `{subject}`: the registry at {} failed for {waited:.0?} ({failure})", self.shown);
            }
            tracing::warn!(registry = %self.shown, subject, error = %failure, "schema registry unavailable; registering again");
            std::thread::sleep(pause.min(self.settings.max_wait.saturating_sub(waited)));
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    fn post(&self, url: &str, body: &str) -> Result<(u16, String), String> {
        let mut req = self.agent.post(url).header("Content-Type", "application/vnd.schemaregistry.v1+json");
        if let Some(auth) = &self.auth {
            req = req.header("Authorization", auth);
        }
        let mut resp = req.send(body.as_bytes()).map_err(|e| e.to_string())?;
        let code = resp.status().as_u16();
        let text = resp.body_mut().with_config().limit(1 << 20).read_to_string().map_err(|e| e.to_string())?;
        Ok((code, text))
    }

    fn get(&self, url: &str) -> Result<(u16, String), String> {
        let mut req = self.agent.get(url).header("Accept", "application/vnd.schemaregistry.v1+json, application/json");
        if let Some(auth) = &self.auth {
            req = req.header("Authorization", auth);
        }
        let mut resp = req.call().map_err(|e| e.to_string())?;
        let code = resp.status().as_u16();
        let body = resp.body_mut().with_config().limit(4 << 20).read_to_string().map_err(|e| e.to_string())?;
        Ok((code, body))
    }
}
