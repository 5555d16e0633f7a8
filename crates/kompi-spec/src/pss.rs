//! The Pod Security Standards' *restricted* profile (which includes *baseline*), as the Kubernetes
//! documentation and the pod-security admission controller define it, checked on a pod spec. Pure:
//! used on the values (`security.profile: restricted`), on every rendered pod, and on pods as an
//! API server stored them.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Capabilities, Container, PodSpec, Probe, SeccompProfile, SecurityContext};

/// The uid and gid the restricted profile runs as unless the values pick others: the kompi image's MPI user.
pub const NON_ROOT_ID: i64 = 1000;

/// One way a pod breaks the profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Where in the pod spec: `securityContext.runAsUser`, `containers[mpi-master].securityContext.privileged`,
    /// `volumes[2].hostPath`.
    pub field: String,
    /// The control of the standard it breaks.
    pub control: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.field, self.detail, self.control)
    }
}

/// Volume sources the restricted profile allows.
const ALLOWED_VOLUMES: &[&str] = &["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];
/// Sysctls the baseline profile allows (namespaced and isolated per pod).
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
const SELINUX_TYPES: &[&str] = &["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"];
const APPARMOR_ANNOTATION: &str = "container.apparmor.security.beta.kubernetes.io/";

/// Every violation of the restricted profile in a pod (its annotations and spec); empty when it complies.
pub fn restricted(annotations: Option<&BTreeMap<String, String>>, pod: &PodSpec) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut violation = |field: String, control: &'static str, detail: String| out.push(Violation { field, control, detail });

    for (flag, set) in [("hostNetwork", pod.host_network), ("hostPID", pod.host_pid), ("hostIPC", pod.host_ipc)] {
        if set == Some(true) {
            violation(flag.into(), "Host Namespaces", "must not share the host's namespace".into());
        }
    }
    for (i, volume) in pod.volumes.iter().flatten().enumerate() {
        let json = serde_json::to_value(volume).unwrap_or_default();
        for source in json.as_object().into_iter().flat_map(|m| m.keys()).filter(|k| *k != "name") {
            if !ALLOWED_VOLUMES.contains(&source.as_str()) {
                violation(format!("volumes[{i}].{source}"), "Volume Types", format!("{source} volumes are not allowed; use one of {}", ALLOWED_VOLUMES.join(", ")));
            }
        }
    }
    for (name, value) in annotations.into_iter().flatten() {
        if name.starts_with(APPARMOR_ANNOTATION) && value != "runtime/default" && !value.starts_with("localhost/") {
            violation(format!("metadata.annotations[{name}]"), "AppArmor", format!("{value:?} must be runtime/default or localhost/<profile>"));
        }
    }

    let pod_context = pod.security_context.clone().unwrap_or_default();
    let at = |field: &str| format!("securityContext.{field}");
    if pod_context.windows_options.as_ref().and_then(|w| w.host_process) == Some(true) {
        violation(at("windowsOptions.hostProcess"), "HostProcess", "must not be true".into());
    }
    if let Some(selinux) = &pod_context.se_linux_options {
        for (field, detail) in selinux_problems(selinux.type_.as_deref(), selinux.user.as_deref(), selinux.role.as_deref()) {
            violation(at(&format!("seLinuxOptions.{field}")), "SELinux", detail);
        }
    }
    if let Some(kind) = pod_context.app_armor_profile.as_ref().map(|p| p.type_.as_str()).filter(|t| !["RuntimeDefault", "Localhost"].contains(t)) {
        violation(at("appArmorProfile.type"), "AppArmor", format!("{kind:?} must be RuntimeDefault or Localhost"));
    }
    for (i, sysctl) in pod_context.sysctls.iter().flatten().enumerate() {
        if !SAFE_SYSCTLS.contains(&sysctl.name.as_str()) {
            violation(at(&format!("sysctls[{i}].name")), "Sysctls", format!("{:?} is not one of the safe sysctls", sysctl.name));
        }
    }
    let pod_non_root = match pod_context.run_as_non_root {
        Some(false) => {
            violation(at("runAsNonRoot"), "Running as Non-root", "must not be false".into());
            false
        }
        other => other == Some(true),
    };
    if pod_context.run_as_user == Some(0) {
        violation(at("runAsUser"), "Running as Non-root user", "must not be 0 (root)".into());
    }
    let pod_seccomp = match pod_context.seccomp_profile.as_ref() {
        Some(p) if valid_seccomp(p) => true,
        Some(p) => {
            violation(at("seccompProfile.type"), "Seccomp", format!("{:?} must be RuntimeDefault or Localhost", p.type_));
            false
        }
        None => false,
    };

    let containers = [("initContainers", &pod.init_containers), ("containers", &Some(pod.containers.clone()))];
    for (list, items) in containers {
        for c in items.iter().flatten() {
            check_container(&format!("{list}[{}]", c.name), c, pod_non_root, pod_seccomp, &mut violation);
        }
    }
    for c in pod.ephemeral_containers.iter().flatten() {
        let as_container = Container { name: c.name.clone(), security_context: c.security_context.clone(), ports: c.ports.clone(), ..Default::default() };
        check_container(&format!("ephemeralContainers[{}]", c.name), &as_container, pod_non_root, pod_seccomp, &mut violation);
    }
    out
}

fn check_container(at: &str, c: &Container, pod_non_root: bool, pod_seccomp: bool, violation: &mut impl FnMut(String, &'static str, String)) {
    let sc = c.security_context.clone().unwrap_or_default();
    let field = |f: &str| format!("{at}.securityContext.{f}");
    if sc.privileged == Some(true) {
        violation(field("privileged"), "Privileged Containers", "must not be true".into());
    }
    if sc.allow_privilege_escalation != Some(false) {
        violation(field("allowPrivilegeEscalation"), "Privilege Escalation", "must be false".into());
    }
    match sc.run_as_non_root {
        Some(false) => violation(field("runAsNonRoot"), "Running as Non-root", "must not be false".into()),
        None if !pod_non_root => violation(field("runAsNonRoot"), "Running as Non-root", "must be true (here or in the pod's securityContext)".into()),
        _ => {}
    }
    if sc.run_as_user == Some(0) {
        violation(field("runAsUser"), "Running as Non-root user", "must not be 0 (root)".into());
    }
    match sc.seccomp_profile.as_ref() {
        Some(p) if !valid_seccomp(p) => violation(field("seccompProfile.type"), "Seccomp", format!("{:?} must be RuntimeDefault or Localhost", p.type_)),
        None if !pod_seccomp => violation(field("seccompProfile.type"), "Seccomp", "must be RuntimeDefault or Localhost (here or in the pod's securityContext)".into()),
        _ => {}
    }
    let caps = sc.capabilities.clone().unwrap_or_default();
    if !caps.drop.iter().flatten().any(|d| d == "ALL") {
        violation(field("capabilities.drop"), "Capabilities", "must contain ALL".into());
    }
    for added in caps.add.iter().flatten().filter(|a| a.as_str() != "NET_BIND_SERVICE") {
        violation(field("capabilities.add"), "Capabilities", format!("{added:?} must not be added (only NET_BIND_SERVICE may)"));
    }
    if sc.windows_options.as_ref().and_then(|w| w.host_process) == Some(true) {
        violation(field("windowsOptions.hostProcess"), "HostProcess", "must not be true".into());
    }
    if let Some(selinux) = &sc.se_linux_options {
        for (f, detail) in selinux_problems(selinux.type_.as_deref(), selinux.user.as_deref(), selinux.role.as_deref()) {
            violation(field(&format!("seLinuxOptions.{f}")), "SELinux", detail);
        }
    }
    if let Some(kind) = sc.app_armor_profile.as_ref().map(|p| p.type_.as_str()).filter(|t| !["RuntimeDefault", "Localhost"].contains(t)) {
        violation(field("appArmorProfile.type"), "AppArmor", format!("{kind:?} must be RuntimeDefault or Localhost"));
    }
    if let Some(mount) = sc.proc_mount.as_deref().filter(|m| *m != "Default") {
        violation(field("procMount"), "/proc Mount Type", format!("{mount:?} must be Default"));
    }
    for (i, port) in c.ports.iter().flatten().enumerate() {
        if port.host_port.is_some_and(|p| p != 0) {
            violation(format!("{at}.ports[{i}].hostPort"), "Host Ports", "must not be set".into());
        }
    }
    let probes = [("livenessProbe", &c.liveness_probe), ("readinessProbe", &c.readiness_probe), ("startupProbe", &c.startup_probe)];
    for (name, probe) in probes {
        if let Some(host) = probe.as_ref().and_then(probe_host) {
            violation(format!("{at}.{name}"), "Host Probes / Lifecycle Hooks", format!("host {host:?} must not be set"));
        }
    }
    let hooks = c.lifecycle.iter().flat_map(|l| [("postStart", &l.post_start), ("preStop", &l.pre_stop)]);
    for (name, hook) in hooks {
        let host = hook.as_ref().and_then(|h| {
            h.http_get.as_ref().and_then(|g| g.host.clone()).or_else(|| h.tcp_socket.as_ref().and_then(|t| t.host.clone()))
        });
        if let Some(host) = host.filter(|h| !h.is_empty()) {
            violation(format!("{at}.lifecycle.{name}"), "Host Probes / Lifecycle Hooks", format!("host {host:?} must not be set"));
        }
    }
}

fn probe_host(probe: &Probe) -> Option<String> {
    let http = probe.http_get.as_ref().and_then(|g| g.host.clone());
    let tcp = probe.tcp_socket.as_ref().and_then(|t| t.host.clone());
    http.or(tcp).filter(|h| !h.is_empty())
}

fn valid_seccomp(profile: &SeccompProfile) -> bool {
    ["RuntimeDefault", "Localhost"].contains(&profile.type_.as_str())
}

fn selinux_problems(kind: Option<&str>, user: Option<&str>, role: Option<&str>) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(t) = kind.filter(|t| !SELINUX_TYPES.contains(t)) {
        out.push(("type", format!("{t:?} must be one of {}", SELINUX_TYPES[1..].join(", "))));
    }
    if user.is_some_and(|u| !u.is_empty()) {
        out.push(("user", "must not be set".into()));
    }
    if role.is_some_and(|r| !r.is_empty()) {
        out.push(("role", "must not be set".into()));
    }
    out
}

/// seccomp's `RuntimeDefault` profile.
pub fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }
}

/// A container securityContext meeting the profile, keeping what `user` set (checked separately):
/// non-root, no privilege escalation, every capability dropped, seccomp `RuntimeDefault`.
pub fn restricted_container(user: Option<SecurityContext>) -> SecurityContext {
    let mut sc = user.unwrap_or_default();
    sc.run_as_non_root.get_or_insert(true);
    sc.allow_privilege_escalation.get_or_insert(false);
    sc.seccomp_profile.get_or_insert_with(runtime_default_seccomp);
    let caps = sc.capabilities.get_or_insert_with(Capabilities::default);
    let drop = caps.drop.get_or_insert_with(Vec::new);
    if !drop.iter().any(|d| d == "ALL") {
        drop.push("ALL".into());
    }
    sc
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, HostPathVolumeSource, PodSecurityContext, SELinuxOptions, Sysctl, TCPSocketAction, Volume};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn compliant() -> PodSpec {
        PodSpec {
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(NON_ROOT_ID),
                seccomp_profile: Some(runtime_default_seccomp()),
                ..Default::default()
            }),
            containers: vec![Container { name: "app".into(), security_context: Some(restricted_container(None)), ..Default::default() }],
            volumes: Some(vec![Volume { name: "scratch".into(), empty_dir: Some(Default::default()), ..Default::default() }]),
            ..Default::default()
        }
    }

    fn fields(pod: &PodSpec) -> Vec<String> {
        restricted(None, pod).into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_compliant_pod_passes_and_a_default_one_does_not() {
        assert_eq!(fields(&compliant()), Vec::<String>::new());
        let plain = PodSpec { containers: vec![Container { name: "app".into(), ..Default::default() }], ..Default::default() };
        assert_eq!(
            fields(&plain),
            [
                "containers[app].securityContext.allowPrivilegeEscalation",
                "containers[app].securityContext.runAsNonRoot",
                "containers[app].securityContext.seccompProfile.type",
                "containers[app].securityContext.capabilities.drop",
            ]
        );
    }

    /// Each change breaks exactly the named field.
    #[test]
    fn every_control_fails_on_its_own() {
        type Breaker = fn(&mut PodSpec);
        let cases: Vec<(Breaker, &str)> = vec![
            (|p| p.host_network = Some(true), "hostNetwork"),
            (|p| p.host_pid = Some(true), "hostPID"),
            (|p| p.security_context.as_mut().unwrap().run_as_user = Some(0), "securityContext.runAsUser"),
            (|p| p.security_context.as_mut().unwrap().run_as_non_root = Some(false), "securityContext.runAsNonRoot"),
            (|p| p.security_context.as_mut().unwrap().seccomp_profile = Some(SeccompProfile { type_: "Unconfined".into(), ..Default::default() }), "securityContext.seccompProfile.type"),
            (|p| p.security_context.as_mut().unwrap().sysctls = Some(vec![Sysctl { name: "kernel.msgmax".into(), value: "1".into() }]), "securityContext.sysctls[0].name"),
            (|p| p.security_context.as_mut().unwrap().se_linux_options = Some(SELinuxOptions { type_: Some("spc_t".into()), ..Default::default() }), "securityContext.seLinuxOptions.type"),
            (|p| p.containers[0].security_context.as_mut().unwrap().privileged = Some(true), "containers[app].securityContext.privileged"),
            (|p| p.containers[0].security_context.as_mut().unwrap().allow_privilege_escalation = Some(true), "containers[app].securityContext.allowPrivilegeEscalation"),
            (|p| p.containers[0].security_context.as_mut().unwrap().run_as_user = Some(0), "containers[app].securityContext.runAsUser"),
            (|p| p.containers[0].security_context.as_mut().unwrap().run_as_non_root = Some(false), "containers[app].securityContext.runAsNonRoot"),
            (|p| p.containers[0].security_context.as_mut().unwrap().capabilities = Some(Capabilities { add: Some(vec!["NET_ADMIN".into()]), drop: Some(vec!["ALL".into()]) }), "containers[app].securityContext.capabilities.add"),
            (|p| p.containers[0].security_context.as_mut().unwrap().capabilities = None, "containers[app].securityContext.capabilities.drop"),
            (|p| p.containers[0].security_context.as_mut().unwrap().proc_mount = Some("Unmasked".into()), "containers[app].securityContext.procMount"),
            (|p| p.containers[0].ports = Some(vec![ContainerPort { container_port: 22, host_port: Some(22), ..Default::default() }]), "containers[app].ports[0].hostPort"),
            (
                |p| p.containers[0].readiness_probe = Some(Probe { tcp_socket: Some(TCPSocketAction { host: Some("10.0.0.1".into()), port: IntOrString::Int(1) }), ..Default::default() }),
                "containers[app].readinessProbe",
            ),
            (
                |p| p.volumes.as_mut().unwrap().push(Volume { name: "h".into(), host_path: Some(HostPathVolumeSource { path: "/".into(), ..Default::default() }), ..Default::default() }),
                "volumes[1].hostPath",
            ),
            (|p| p.init_containers = Some(vec![Container { name: "fetch".into(), security_context: Some(SecurityContext { run_as_user: Some(0), ..restricted_container(None) }), ..Default::default() }]), "initContainers[fetch].securityContext.runAsUser"),
        ];
        for (breaker, field) in cases {
            let mut pod = compliant();
            breaker(&mut pod);
            assert_eq!(fields(&pod), [field], "breaking {field}");
        }
    }

    #[test]
    fn container_settings_may_stand_in_for_the_pods() {
        let mut pod = compliant();
        pod.security_context = None;
        let sc = pod.containers[0].security_context.as_mut().unwrap();
        sc.run_as_non_root = Some(true);
        assert!(restricted(None, &pod).is_empty(), "{:?}", restricted(None, &pod));
        let annotations = BTreeMap::from([(format!("{APPARMOR_ANNOTATION}app"), "unconfined".to_string())]);
        assert_eq!(restricted(Some(&annotations), &pod).len(), 1);
    }
}
