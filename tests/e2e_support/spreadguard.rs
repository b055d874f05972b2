//! `spreadguard serve` against the test bed, as it runs in a cluster: watching Nodes and
//! Namespaces through the API server (no `--nodes`) with the chart's ServiceAccount and RBAC,
//! the policy file from the chart's ConfigMap, a serving certificate for `127.0.0.1` in a
//! Secret-volume layout (`..data` symlink), and the webhook configurations the chart renders
//! with `webhooks.url`, their `caBundle` set to the CA that signed the serving certificate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use super::api::{self, Answer};
use super::bed::{Bed, kubeconfig_yaml};
use super::chart;
use super::procs::{Proc, free_port, tail};
use super::tls::{Ca, Pem};
use super::wait::{Deadline, until};

const BIN: &str = env!("CARGO_BIN_EXE_spreadguard");

/// How one spreadguard is installed.
#[derive(Clone, Debug)]
pub struct Options {
    /// Release name and `fullnameOverride`: names the ServiceAccount, ClusterRole and webhook
    /// configurations, so several releases can live in one bed.
    pub release: String,
    /// The release namespace.
    pub namespace: String,
    /// Chart values, merged over the test bed's (URL, certificates, failure policies).
    pub values: Value,
    /// Bind the ClusterRole to the ServiceAccount (the chart does; a readiness test does not,
    /// at first).
    pub bind_rbac: bool,
}

impl Options {
    pub fn new(release: &str) -> Options {
        Options {
            release: release.to_owned(),
            namespace: "spreadguard-system".to_owned(),
            values: json!({}),
            bind_rbac: true,
        }
    }

    pub fn values(mut self, values: Value) -> Options {
        merge(&mut self.values, &values);
        self
    }
}

/// A running (or stopped) spreadguard and its chart objects.
pub struct Spreadguard {
    pub options: Options,
    pub dir: PathBuf,
    /// `https://127.0.0.1:PORT`, what the webhook configurations call.
    pub url: String,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub ca: Ca,
    /// Every object the chart rendered.
    pub rendered: Vec<Value>,
    /// The values of that render.
    pub values: Value,
    proc: Mutex<Option<Proc>>,
    bed_kubeconfig: PathBuf,
}

impl Spreadguard {
    /// Renders the chart, creates its ServiceAccount and RBAC, and starts `serve` as that
    /// ServiceAccount; waits for `/readyz` when the RBAC is bound. Does not register the
    /// webhooks: see [`Spreadguard::register`].
    pub async fn start(bed: &Bed, options: Options) -> Spreadguard {
        let dir = bed.dir.join(format!("spreadguard-{}", options.release));
        std::fs::create_dir_all(&dir).unwrap();
        let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let url = format!("https://{listen}");
        let ca = Ca::new(&format!("spreadguard e2e CA ({})", options.release));

        let mut values = json!({
            "fullnameOverride": options.release,
            "webhooks": {
                "url": url,
                // The bed fails loudly: a request that does not reach spreadguard is refused,
                // never silently admitted. Tests of Ignore set it themselves.
                "mutating": {"failurePolicy": "Fail"},
                "validating": {"failurePolicy": "Fail"},
            },
            "certificates": {
                "mode": "existingSecret",
                "existingSecret": {"name": format!("{}-tls", options.release), "caBundle": ca.pem},
            },
        });
        merge(&mut values, &options.values);
        let rendered = chart::render(
            &options.release,
            &options.namespace,
            &values,
            Some(&bed.kubeconfig),
        );

        let client = bed.client().await;
        api::apply(
            &client,
            &json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": options.namespace}}),
        )
        .await;
        for object in chart::of_kind(&rendered, "ServiceAccount")
            .into_iter()
            .chain(chart::of_kind(&rendered, "ClusterRole"))
        {
            api::apply(&client, object).await;
        }
        if options.bind_rbac {
            for object in chart::of_kind(&rendered, "ClusterRoleBinding") {
                api::apply(&client, object).await;
            }
        }

        // The ServiceAccount's token, as the kubelet would mount it.
        let sa = chart::one(&rendered, "ServiceAccount")["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_owned();
        let token = api::send(
            &client,
            axum::http::Method::POST,
            &format!(
                "/api/v1/namespaces/{}/serviceaccounts/{sa}/token",
                options.namespace
            ),
            "application/json",
            Some(
                &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                         "spec": {"expirationSeconds": 86400}}),
            ),
        )
        .await
        .expect_ok("TokenRequest");
        let token = token.body["status"]["token"].as_str().unwrap().to_owned();
        std::fs::write(
            dir.join("kubeconfig"),
            kubeconfig_yaml(&bed.server, &bed.ca_pem, &token),
        )
        .unwrap();

        // The policy file is the chart's ConfigMap.
        let policy = chart::one(&rendered, "ConfigMap")["data"]["policy.yaml"]
            .as_str()
            .expect("policy.yaml in the ConfigMap")
            .to_owned();
        std::fs::write(dir.join("policy.yaml"), policy).unwrap();

        let serving = ca.server(&["127.0.0.1"]);
        write_secret_volume(&dir.join("tls"), &serving);

        let sg = Spreadguard {
            options,
            dir,
            url,
            listen,
            admin,
            ca,
            rendered,
            values,
            proc: Mutex::new(None),
            bed_kubeconfig: bed.kubeconfig.clone(),
        };
        sg.spawn();
        if sg.options.bind_rbac {
            sg.wait_ready().await;
        }
        sg
    }

    /// Starts the `serve` process (again).
    pub fn spawn(&self) {
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .arg("--tls-cert")
            .arg(self.dir.join("tls/tls.crt"))
            .arg("--tls-key")
            .arg(self.dir.join("tls/tls.key"))
            .arg("--config")
            .arg(self.dir.join("policy.yaml"))
            .arg("--kubeconfig")
            .arg(self.dir.join("kubeconfig"))
            .arg("--listen")
            .arg(self.listen.to_string())
            .arg("--admin-listen")
            .arg(self.admin.to_string())
            .args(["--log-format", "json", "--reload-interval", "200ms"])
            .args(["--shutdown-grace", "0s", "--drain-timeout", "2s"])
            .env("RUST_LOG", "info")
            .env_remove("KUBECONFIG");
        let proc = Proc::spawn("spreadguard", command, &self.log_path());
        *self.proc.lock().unwrap_or_else(|e| e.into_inner()) = Some(proc);
    }

    /// Stops the `serve` process (SIGTERM, then SIGKILL).
    pub fn stop(&self) {
        if let Some(mut p) = self.proc.lock().unwrap_or_else(|e| e.into_inner()).take() {
            p.stop(Duration::from_secs(5));
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("spreadguard.log")
    }

    /// The JSON log lines written so far.
    pub fn log_events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Panics with the end of the log if the process has exited.
    pub fn assert_running(&self) {
        if let Some(p) = self.proc.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            p.assert_running();
        }
    }

    /// HTTP status of a GET on the admin port (`None`: no answer).
    pub fn admin_status(&self, path: &str) -> Option<u16> {
        admin_get(self.admin, path).map(|(status, _)| status)
    }

    /// `/metrics`.
    pub fn metrics(&self) -> String {
        admin_get(self.admin, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    pub async fn wait_ready(&self) {
        let mut deadline = Deadline::new(Duration::from_secs(30), "spreadguard /readyz");
        loop {
            self.assert_running();
            match self.admin_status("/readyz") {
                Some(200) => return,
                other => {
                    deadline
                        .tick_async(&format!("{other:?}; log:\n{}", tail(&self.log_path(), 10)))
                        .await
                }
            }
        }
    }

    /// Renders the chart again with `values` merged over the current ones (a `helm upgrade`),
    /// and writes the new policy file (the server reloads it). Webhook configurations change
    /// at the API server only with [`Spreadguard::register`].
    pub fn upgrade(&mut self, bed: &Bed, values: Value) {
        merge(&mut self.values, &values);
        self.rendered = chart::render(
            &self.options.release,
            &self.options.namespace,
            &self.values,
            Some(&bed.kubeconfig),
        );
        let policy = chart::one(&self.rendered, "ConfigMap")["data"]["policy.yaml"]
            .as_str()
            .unwrap()
            .to_owned();
        std::fs::write(self.dir.join("policy.yaml.tmp"), policy).unwrap();
        std::fs::rename(
            self.dir.join("policy.yaml.tmp"),
            self.dir.join("policy.yaml"),
        )
        .unwrap();
    }

    /// A rendered webhook configuration.
    pub fn webhook_configuration(&self, kind: &str) -> Value {
        chart::one(&self.rendered, kind).clone()
    }

    /// Creates (or updates) both webhook configurations as the chart rendered them, and waits
    /// until the API server calls spreadguard for a probe namespace.
    pub async fn register(&self, bed: &Bed) {
        self.register_only(bed).await;
        self.wait_effective(bed).await;
    }

    /// Creates (or updates) both webhook configurations without waiting.
    pub async fn register_only(&self, bed: &Bed) {
        let client = bed.client().await;
        for kind in [
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        ] {
            api::apply(&client, &self.webhook_configuration(kind)).await;
        }
    }

    /// Deletes both webhook configurations.
    pub async fn unregister(&self, bed: &Bed) {
        let client = bed.client().await;
        let name = &self.options.release;
        for plural in [
            "mutatingwebhookconfigurations",
            "validatingwebhookconfigurations",
        ] {
            api::delete_path(
                &client,
                &format!("/apis/admissionregistration.k8s.io/v1/{plural}/{name}"),
            )
            .await;
        }
    }

    /// Webhook configurations take effect asynchronously: polls server-side dry-run creates in
    /// an opted-in `enforce` namespace until a 3-replica Deployment comes back patched and a
    /// 1-replica one is denied by this release's webhooks.
    pub async fn wait_effective(&self, bed: &Bed) {
        let client = bed.client().await;
        let ns = api::namespace(&client, "probe", &api::opted_in("enforce")).await;
        self.wait_mode(bed, &ns, "enforce").await;
    }

    /// Waits until spreadguard (and the API server's webhook dispatch) treats namespace `ns`
    /// in `mode` (`enforce`, `warn`, `audit`, or `off` for not intercepted), probing with
    /// server-side dry runs of a 1-replica Deployment.
    pub async fn wait_mode(&self, bed: &Bed, ns: &str, mode: &str) {
        let client = bed.client().await;
        let probe = super::objects::deployment(ns, "mode-probe", Some(1));
        until(
            Duration::from_secs(20),
            &format!("spreadguard to treat namespace {ns} as {mode}"),
            || async {
                self.assert_running();
                let answer = api::create(&client, &probe, true).await;
                if mode_of(&answer) == mode {
                    Ok(())
                } else {
                    Err(format!("{answer:?}"))
                }
            },
        )
        .await
    }

    /// Replaces the serving certificate the way the kubelet updates a Secret volume: the new
    /// files go into a fresh directory and the `..data` symlink is swapped atomically.
    pub fn rotate_certificate(&self, serving: &Pem) {
        write_secret_volume(&self.dir.join("tls"), serving);
    }

    /// The kubeconfig of the bed's admin (for the CLI commands tests compare).
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.bed_kubeconfig
    }
}

impl Drop for Spreadguard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a dry-run create of a 1-replica Deployment says about the namespace's mode.
fn mode_of(answer: &Answer) -> &'static str {
    let denied_by_us = answer.status == 403 && answer.message().contains("HA001");
    if denied_by_us {
        return "enforce";
    }
    if !answer.ok() {
        return "error";
    }
    if answer
        .warnings
        .iter()
        .any(|w| w.starts_with("would deny: HA001"))
    {
        "audit"
    } else if answer.warnings.iter().any(|w| w.starts_with("HA001")) {
        "warn"
    } else {
        "off"
    }
}

/// Writes `tls.crt` and `tls.key` as a Secret volume holds them: `NAME -> ..data/NAME`,
/// `..data -> ..<timestamp>`, the symlink swapped by rename.
fn write_secret_volume(dir: &Path, pem: &Pem) {
    use std::os::unix::fs::symlink;
    std::fs::create_dir_all(dir).unwrap();
    let version = format!("..{}", super::bed::random_hex(6));
    let data = dir.join(&version);
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("tls.crt"), &pem.cert).unwrap();
    std::fs::write(data.join("tls.key"), &pem.key).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(&version, &tmp).unwrap();
    let old = std::fs::read_link(dir.join("..data")).ok();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for name in ["tls.crt", "tls.key"] {
        if std::fs::symlink_metadata(dir.join(name)).is_err() {
            symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
}

/// A minimal HTTP/1.1 GET on the plain-HTTP admin port: status and body.
fn admin_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Deep-merges `over` into `base` (objects merge, everything else replaces).
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (k, v) in over {
                merge(base.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (base, over) => *base = over.clone(),
    }
}
