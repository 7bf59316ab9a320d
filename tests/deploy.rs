//! The deployment files: the Dockerfile passes hadolint, the Helm chart passes
//! `helm lint` and the Kubernetes schemas (`scripts/deploy-check.sh check`),
//! and the chart rendered for a 3-process cluster wires what vigil needs: a
//! hostfile naming each pod by the headless Service, each pod's process index,
//! probes on the HTTP port, the job and hostfile mounted where the arguments
//! say, a volume per pod. The test command installs the tools
//! (`scripts/deploy-check.sh fetch`); without them these tests fail.

use std::process::Command;

use serde_json::Value;
use vigil::spec::JobSpec;

fn script() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/deploy-check.sh")
}

/// The chart rendered with `flags` (release `vigil`, namespace `jobs`).
fn render(flags: &[&str]) -> Vec<Value> {
    let out = Command::new(script()).arg("render").args(flags).output().expect("running scripts/deploy-check.sh");
    assert!(out.status.success(), "rendering the chart: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the rendered chart as JSON")
}

fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects.iter().find(|o| o["kind"] == kind && o["metadata"]["name"] == name).unwrap_or_else(|| panic!("no {kind} {name} in the chart"))
}

fn kinds<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array().expect("an array").iter().map(|s| s.as_str().expect("a string").to_owned()).collect()
}

/// The value after `flag` in `args`.
fn after<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map(String::as_str)
}

/// Whether `selector` (matchLabels or a Service's selector) selects `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let s = selector.as_object().expect("a selector");
    !s.is_empty() && s.iter().all(|(k, v)| labels[k] == *v)
}

fn port(container: &Value, name: &str) -> u64 {
    container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no port {name}"))
}

/// The mount path of `volume` (with `sub_path`, if given).
fn mount(container: &Value, volume: &str, sub_path: Option<&str>) -> Option<String> {
    container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume && sub_path.is_none_or(|s| m["subPath"] == s))
        .map(|m| m["mountPath"].as_str().unwrap().to_owned())
}

#[test]
fn the_deployment_files_pass_their_linters_and_the_kubernetes_schemas() {
    let out = Command::new(script()).arg("check").output().expect("running scripts/deploy-check.sh");
    assert!(out.status.success(), "scripts/deploy-check.sh check:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_three_process_chart_wires_the_hostfile_probes_and_volumes() {
    let objects = render(&["--set", "processes=3"]);
    let sts = kinds(&objects, "StatefulSet");
    assert_eq!(sts.len(), 1);
    let sts = sts[0];
    let name = sts["metadata"]["name"].as_str().unwrap();
    let spec = &sts["spec"];
    assert_eq!(spec["replicas"], 3);
    assert_eq!(spec["podManagementPolicy"], "Parallel", "a timely cluster's processes start together");
    let pod_labels = &spec["template"]["metadata"]["labels"];
    assert!(selects(&spec["selector"]["matchLabels"], pod_labels));

    // the headless Service names the pods, ready or not
    let service = spec["serviceName"].as_str().unwrap();
    let headless = object(&objects, "Service", service);
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);
    assert!(selects(&headless["spec"]["selector"], pod_labels));

    let pod = &spec["template"]["spec"];
    let container = &pod["containers"][0];
    let args = strs(&container["args"]);
    let cluster_port = port(container, "cluster");
    let http_port = port(container, "http");

    // the hostfile: one line per pod, by its DNS name, on the cluster port
    let config_name = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "config").unwrap()["configMap"]["name"].as_str().unwrap();
    let config = object(&objects, "ConfigMap", config_name);
    let hosts: Vec<&str> = config["data"]["hosts"].as_str().unwrap().lines().collect();
    let want: Vec<String> = (0..3).map(|i| format!("{name}-{i}.{service}.jobs.svc.cluster.local:{cluster_port}")).collect();
    assert_eq!(hosts, want);
    assert_eq!(after(&args, "--hostfile"), mount(container, "config", Some("hosts")).as_deref(), "the hostfile is mounted where --hostfile reads it");
    assert_eq!(after(&args, "--processes"), Some("3"));
    assert_eq!(after(&args, "--cluster-listen"), Some(format!("0.0.0.0:{cluster_port}").as_str()));

    // the process index is the pod's ordinal
    assert_eq!(after(&args, "--process"), Some("$(VIGIL_PROCESS)"));
    let env = container["env"].as_array().unwrap();
    let index = env.iter().find(|e| e["name"] == "VIGIL_PROCESS").expect("VIGIL_PROCESS");
    assert_eq!(index["valueFrom"]["fieldRef"]["fieldPath"], "metadata.labels['apps.kubernetes.io/pod-index']");

    // the job spec is mounted where `run` reads it, and vigil accepts it
    assert_eq!(&args[..2], &["run".to_owned(), mount(container, "config", Some("job.toml")).unwrap()]);
    JobSpec::from_toml(config["data"]["job.toml"].as_str().unwrap()).expect("the chart's default job is a valid job spec");

    // probes on the port /metrics is served on
    assert_eq!(after(&args, "--metrics-addr"), Some(format!("0.0.0.0:{http_port}").as_str()));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], "http");
    }
    assert!(after(&args, "--ready-max-lag").is_some() && after(&args, "--health-stall").is_some());

    // a volume per pod under vigil's home; no checkpoints by default
    let claims = spec["volumeClaimTemplates"].as_array().unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(mount(container, claims[0]["metadata"]["name"].as_str().unwrap(), None).as_deref(), Some("/var/lib/vigil"));
    assert!(after(&args, "--checkpoint-dir").is_none());
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(mount(container, "tmp", None).as_deref(), Some("/tmp"));

    // the readers' Service, the disruption budget and the PodMonitor select the pods
    let readers = object(&objects, "Service", name);
    assert!(selects(&readers["spec"]["selector"], pod_labels));
    assert_eq!(readers["spec"]["ports"][0]["targetPort"], "http");
    let pdb = &kinds(&objects, "PodDisruptionBudget")[0]["spec"];
    assert!(selects(&pdb["selector"]["matchLabels"], pod_labels));
    let monitor = &kinds(&objects, "PodMonitor")[0]["spec"];
    assert!(selects(&monitor["selector"]["matchLabels"], pod_labels));
    assert_eq!(monitor["podMetricsEndpoints"][0]["port"], "http");
    assert_eq!(monitor["podMetricsEndpoints"][0]["path"], "/metrics");
}

#[test]
fn a_single_process_chart_checkpoints_on_its_volume_and_mounts_the_kafka_secret() {
    let objects = render(&[
        "--set",
        "processes=1",
        "--set",
        "checkpoints.enabled=true",
        "--set",
        "kafka.secretName=kafka-client",
        "--set",
        "kafka.secretEnv[0].name=KAFKA_PASSWORD",
        "--set",
        "kafka.secretEnv[0].key=password",
        "--set",
        "kafka.settings[0]=sasl.password=env:KAFKA_PASSWORD",
    ]);
    let pod = &kinds(&objects, "StatefulSet")[0]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args = strs(&container["args"]);
    assert!(after(&args, "--hostfile").is_none() && after(&args, "--processes").is_none(), "one process is not a cluster: {args:?}");
    let home = mount(container, "data", None).unwrap();
    assert!(after(&args, "--checkpoint-dir").unwrap().starts_with(&format!("{home}/")), "checkpoints on the pod's volume: {args:?}");
    assert_eq!(after(&args, "-X"), Some("sasl.password=env:KAFKA_PASSWORD"));
    let env = container["env"].as_array().unwrap();
    let password = env.iter().find(|e| e["name"] == "KAFKA_PASSWORD").expect("the password from the Secret");
    assert_eq!(password["valueFrom"]["secretKeyRef"]["name"], "kafka-client");
    assert_eq!(mount(container, "kafka", None).as_deref(), Some("/etc/vigil/kafka"));
    let secret = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "kafka").unwrap();
    assert_eq!(secret["secret"]["secretName"], "kafka-client");
}

/// What `render` with `flags` fails with.
fn refusal(flags: &[&str]) -> String {
    let out = Command::new(script()).arg("render").args(flags).output().unwrap();
    assert!(!out.status.success(), "the chart rendered {flags:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_chart_refuses_checkpoints_of_several_processes_on_the_pipeline_and_savepoints_on_the_graph() {
    let err = refusal(&["--set", "processes=3", "--set", "checkpoints.enabled=true"]);
    assert!(err.contains("checkpoints.enabled with processes > 1 needs engine=graph"), "{err}");
    let err = refusal(&["--set", "processes=1", "--set", "engine=graph", "--set", "checkpoints.enabled=true", "--set", "savepoints.onStop=true"]);
    assert!(err.contains("savepoints.* need engine=pipeline"), "{err}");
    let err = refusal(&["--set", "engine=flink"]);
    assert!(err.contains(r#"engine must be pipeline or graph, not "flink""#), "{err}");
}

/// Three processes of a graph job checkpoint into one directory: a
/// ReadWriteMany claim (the chart's, or an existing one) mounted by every pod,
/// and `--checkpoint-dir` in it, as `vigil run --engine graph -n 3` needs.
#[test]
fn a_three_process_graph_chart_checkpoints_into_one_shared_volume() {
    let objects = render(&["--set", "processes=3", "--set", "engine=graph", "--set", "checkpoints.enabled=true"]);
    let pod = &kinds(&objects, "StatefulSet")[0]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args = strs(&container["args"]);
    assert_eq!(after(&args, "--engine"), Some("graph"));
    assert_eq!(after(&args, "--processes"), Some("3"));
    let shared = mount(container, "checkpoints", None).expect("the shared checkpoint volume mounted");
    assert!(after(&args, "--checkpoint-dir").unwrap().starts_with(&format!("{shared}/")), "checkpoints on the shared volume: {args:?}");
    let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "checkpoints").unwrap();
    let claim_name = volume["persistentVolumeClaim"]["claimName"].as_str().unwrap();
    let claim = object(&objects, "PersistentVolumeClaim", claim_name);
    assert_eq!(strs(&claim["spec"]["accessModes"]), vec!["ReadWriteMany"], "every pod writes into it");
    assert_eq!(claim["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");

    // an existing claim instead
    let objects =
        render(&["--set", "processes=3", "--set", "engine=graph", "--set", "checkpoints.enabled=true", "--set", "checkpoints.shared.existingClaim=nfs-ck"]);
    assert!(kinds(&objects, "PersistentVolumeClaim").is_empty());
    let pod = &kinds(&objects, "StatefulSet")[0]["spec"]["template"]["spec"];
    let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "checkpoints").unwrap();
    assert_eq!(volume["persistentVolumeClaim"]["claimName"], "nfs-ck");
    // one process keeps its checkpoints on its own volume
    let objects = render(&["--set", "processes=1", "--set", "engine=graph", "--set", "checkpoints.enabled=true"]);
    let container = &kinds(&objects, "StatefulSet")[0]["spec"]["template"]["spec"]["containers"][0];
    assert!(mount(container, "checkpoints", None).is_none() && kinds(&objects, "PersistentVolumeClaim").is_empty());
}

#[test]
fn every_alert_links_to_its_runbook_in_the_readme() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let runbooks = readme.split("\n## Runbooks\n").nth(1).expect("a Runbooks section").split("\n## ").next().unwrap();
    let mut alerts = 0;
    for block in rules.split("- alert: ").skip(1) {
        let name = block.split_whitespace().next().unwrap();
        let rule = block.split("\n      - alert").next().unwrap();
        let url = rule.lines().find_map(|l| l.trim().strip_prefix("runbook_url: ")).unwrap_or_else(|| panic!("{name} has no runbook_url"));
        assert!(url.trim_matches('\'').ends_with(&format!("README.md{{{{ end }}}}#{}", name.to_lowercase())), "{name}: {url}");
        let section = runbooks.split(&format!("\n### {name}\n")).nth(1).unwrap_or_else(|| panic!("README's Runbooks has no section {name}"));
        let section = section.split("\n### ").next().unwrap();
        for part in ["**Means:**", "**Look first:**", "**Act:**"] {
            assert!(section.contains(part), "the runbook of {name} lacks {part}");
        }
        alerts += 1;
    }
    assert_eq!(alerts, 18);
}
