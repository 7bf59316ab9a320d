//! The fraud job reading Avro scores exactly what it scores reading JSON.
//!
//! The demo's transactions (with its malformed, late and out-of-range records)
//! are re-encoded as Avro datums of one writer schema (`vigil::demo::avro`), record for record at the
//! same offsets: each record the JSON decoder accepts becomes a datum (its time,
//! an integer, a float or an RFC 3339 string, in a union of the three), each it
//! rejects keeps its bytes. The job (`examples/fraud_job.toml`, pipeline and
//! graph) then runs once on each topic: the scores are equal byte for byte, the
//! dead letters sit at the same offsets with the same reasons where the record
//! was decodable, and the Avro job rejects every record the JSON job could not
//! decode.

use vigil::spec::{AvroSchemas, JobSpec, SourceFormat};

use vigil::demo::avro::{transaction_datum, transaction_schema, TRANSACTION_SCHEMA as WRITER};

#[path = "support/format_jobs.rs"]
mod format_jobs;
use format_jobs::{graph, json_input, pipeline, reencode};

#[test]
fn the_fraud_job_scores_avro_as_it_scores_json() {
    let json_job = JobSpec::from_toml(&std::fs::read_to_string("examples/fraud_job.toml").unwrap()).unwrap();
    let mut avro_job = json_job.clone();
    avro_job.source.format = SourceFormat::Avro(AvroSchemas::Fixed { schema: WRITER.into() });
    vigil::decode::avro::check_fixed_schema(&avro_job.source).unwrap();

    let schema = transaction_schema();
    let json = json_input(23);
    let (avro, undecodable) = reencode(&json_job, &json, |bytes| transaction_datum(&schema, bytes).expect("a decodable transaction fits the schema"));

    for run in [pipeline, graph] {
        let from_json = run(&json_job, &json);
        let from_avro = run(&avro_job, &avro);
        assert!(from_json.scores.values().map(Vec::len).sum::<usize>() > 8_000);
        assert_eq!(from_avro.scores, from_json.scores, "the scores");
        let mut expected = from_json.dead.clone();
        for at in &undecodable {
            let reason = from_avro.dead.get(at).unwrap_or_else(|| panic!("{at:?}: the Avro job accepted a record JSON could not decode"));
            expected.insert(*at, reason.clone());
        }
        assert_eq!(from_avro.dead, expected, "dead letters");
        let late = from_avro.dead.values().filter(|r| *r == "late").count();
        let time = from_avro.dead.values().filter(|r| *r == "bad_timestamp").count();
        assert!(late > 0 && time > 0, "late and bad timestamps reach the Avro job's clock: {late}, {time}");
    }
}

/// `format = "avro"` in a job file, and its mistakes, each named.
#[test]
fn avro_sources_in_toml() {
    let dir = tempfile::tempdir().unwrap();
    let avsc = dir.path().join("tx.avsc");
    std::fs::write(&avsc, WRITER).unwrap();
    let toml = |source_extra: &str| {
        let base = std::fs::read_to_string("examples/fraud_job.toml").unwrap();
        base.replacen("max_message_bytes = 65536\n", &format!("max_message_bytes = 65536\n{source_extra}\n"), 1)
    };
    let with_file = format!("format = \"avro\"\navro = {{ schema_file = \"{}\" }}", avsc.display());
    let job = JobSpec::from_toml(&toml(&with_file)).unwrap();
    assert_eq!(job.source.format, SourceFormat::Avro(AvroSchemas::Fixed { schema: WRITER.into() }));
    let job = JobSpec::from_toml(&toml("format = \"avro\"\navro = { registry = \"http://127.0.0.1:1/\", registry_max_wait = \"3s\" }")).unwrap();
    let SourceFormat::Avro(AvroSchemas::Registry(r)) = &job.source.format else { panic!("{:?}", job.source.format) };
    assert_eq!((r.url.as_str(), r.max_wait), ("http://127.0.0.1:1", std::time::Duration::from_secs(3)));
    std::env::set_var("VIGIL_TEST_REGISTRY_SECRET", "s3cret");
    let job = JobSpec::from_toml(&toml(
        "format = \"avro\"\navro = { registry = \"http://r\", registry_user = \"key\", registry_password_env = \"VIGIL_TEST_REGISTRY_SECRET\" }",
    ))
    .unwrap();
    let SourceFormat::Avro(AvroSchemas::Registry(r)) = &job.source.format else { unreachable!() };
    assert_eq!(r.password.as_deref(), Some("s3cret"));
    assert!(!format!("{r:?}").contains("s3cret"), "the password is never printed");

    let incompatible = dir.path().join("bad.avsc");
    std::fs::write(&incompatible, WRITER.replace(r#"{"name": "amount", "type": "double"}"#, r#"{"name": "amount", "type": "string"}"#)).unwrap();
    for (extra, says) in [
        ("format = \"avro\"".to_owned(), "needs [source.avro]"),
        ("avro = { registry = \"http://r\" }".to_owned(), "`format` is not \"avro\""),
        ("format = \"protobuf\"".to_owned(), "needs [source.protobuf]"),
        ("format = \"xml\"".to_owned(), "unknown format `xml`"),
        ("format = \"avro\"\nprotobuf = { schema_file = \"x.proto\" }".to_owned(), "[source.protobuf] is set but `format` is not \"protobuf\""),
        ("format = \"avro\"\navro = { registry = \"http://r\", schema_file = \"x.avsc\" }".to_owned(), "either `registry`"),
        ("format = \"avro\"\navro = { registry = \"http://r\", registry_user = \"key\" }".to_owned(), "together"),
        (
            "format = \"avro\"\navro = { registry = \"http://r\", registry_user = \"k\", registry_password_env = \"VIGIL_TEST_UNSET_VAR\" }".to_owned(),
            "`VIGIL_TEST_UNSET_VAR` is not set",
        ),
        (
            format!("format = \"avro\"\navro = {{ schema_file = \"{}\", registry_max_wait = \"1s\" }}", avsc.display()),
            "`registry_max_wait` applies to a registry",
        ),
        (format!("format = \"avro\"\navro = {{ schema_file = \"{}\" }}", incompatible.display()), "`amount` is a string in the writer schema"),
        ("format = \"avro\"\navro = { schema_file = \"/nonexistent.avsc\" }".to_owned(), "reading the Avro schema file"),
    ] {
        let e = JobSpec::from_toml(&toml(&extra)).unwrap_err();
        assert!(format!("{e:#}").contains(says), "{extra}: {e:#}");
    }
}

/// `[sinks] format = "avro"` with `[sinks.avro]` in a TOML job: the registry's
/// settings read as the source's are; every misconfiguration is refused by name.
#[test]
fn avro_outputs_are_configured_in_toml_and_misconfiguration_is_named() {
    use vigil::spec::OutputFormat;
    let toml = |sinks_extra: &str| {
        let base = std::fs::read_to_string("examples/fraud_job.toml").unwrap();
        base.replacen("dlq = \"dlq\"\n", &format!("dlq = \"dlq\"\n{sinks_extra}\n"), 1)
    };
    assert_eq!(JobSpec::from_toml(&toml("")).unwrap().sinks.format, OutputFormat::Json);
    assert_eq!(JobSpec::from_toml(&toml("format = \"json\"")).unwrap().sinks.format, OutputFormat::Json);
    let job = JobSpec::from_toml(&toml("format = \"avro\"\navro = { registry = \"http://127.0.0.1:1/\", registry_max_wait = \"3s\" }")).unwrap();
    let OutputFormat::Avro(r) = &job.sinks.format else { panic!("{:?}", job.sinks.format) };
    assert_eq!((r.url.as_str(), r.max_wait), ("http://127.0.0.1:1", std::time::Duration::from_secs(3)));
    for (extra, says) in [
        ("format = \"avro\"", "needs [sinks.avro]"),
        ("avro = { registry = \"http://r\" }", "[sinks.avro] is set but `format` is not \"avro\""),
        ("format = \"protobuf\"", "unknown format `protobuf`"),
        ("format = \"avro\"\navro = { registry = \"http://r\", registry_user = \"key\" }", "together"),
        ("format = \"avro\"\navro = { registry = \"http://r\", schema_file = \"x.avsc\" }", "unknown field `schema_file`"),
        (
            "format = \"avro\"\navro = { registry = \"http://r\", registry_user = \"k\", registry_password_env = \"VIGIL_TEST_UNSET_VAR\" }",
            "`VIGIL_TEST_UNSET_VAR` is not set",
        ),
    ] {
        let e = JobSpec::from_toml(&toml(extra)).unwrap_err();
        assert!(format!("{e:#}").contains(says), "{extra}: {e:#}");
    }
}
