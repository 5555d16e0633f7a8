//! Gang scheduling: `runPolicy.schedulingPolicy` made into the PodGroup of the scheduler the operator is
//! told to use (`--gang-scheduling`, mpi-operator's flag and values), and the mark on each pod that puts
//! it in the group.
//!
//! - Volcano (`scheduling.volcano.sh/v1beta1`): `minMember`, `queue` (the policy's, else the MPIJob's
//!   `scheduling.volcano.sh/queue-name` annotation), `priorityClassName` (the policy's, else the
//!   launcher's then the workers' pod template's), `minResources`; pods get schedulerName `volcano` and
//!   the annotation `scheduling.k8s.io/group-name`. Volcano has no schedule timeout.
//! - scheduler-plugins' coscheduling (`scheduling.x-k8s.io/v1alpha1`): `minMember`, `minResources`,
//!   `scheduleTimeoutSeconds`; pods get the label `scheduling.x-k8s.io/pod-group` and the scheduler's
//!   name. It has no queue or priority class.
//!
//! As mpi-operator: the group is named after the job, `minMember` defaults to the workers plus the
//! launcher, and `minResources` defaults to the sum of the containers' requests (a limit where a
//! resource has no request) over the first `minMember` pods, the launcher counted first. Unlike
//! mpi-operator, which reads PriorityClass objects to decide which pods count, every pod here has the
//! same weight (a pure function of the job); and an unset `scheduleTimeoutSeconds` is left out of the
//! coscheduling PodGroup (mpi-operator writes 0, which the plugin reads as "do not wait at all"), so
//! the plugin's own default applies.
//!
//! mpi-operator #608: with `launcherCreationPolicy: WaitForWorkersReady` its launcher is created only
//! once every worker is Ready, but a gang scheduler binds no worker until the whole group (the launcher
//! included) exists, so neither ever happens. kompi creates the launcher together with the workers
//! whenever a gang scheduler is in use (see [`crate::plan`]): the launcher's own gate (`kompi init`
//! starts the command only once every worker answers on ssh) already gives what WaitForWorkersReady
//! asks for, so the group is complete from the start and can be admitted as one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kompi_spec::dns1123_label;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind, ObjectMeta};
use serde_json::{Map, Value, json};

use crate::api::MPIJob;
use crate::build::{object_labels, owner_reference};
use crate::job::Job;
use crate::quantity;
use crate::validate::{FieldError, invalid};

/// `--gang-scheduling`'s value for no gang scheduling (the default).
pub const NONE: &str = "none";
/// `--gang-scheduling`'s value for Volcano; Volcano's scheduler has this name too.
pub const VOLCANO: &str = "volcano";
/// The pod annotation naming a pod's Volcano PodGroup.
pub const VOLCANO_GROUP_ANNOTATION: &str = "scheduling.k8s.io/group-name";
/// The MPIJob annotation naming the Volcano queue, when the policy names none.
pub const VOLCANO_QUEUE_ANNOTATION: &str = "scheduling.volcano.sh/queue-name";
/// The pod label naming a pod's coscheduling PodGroup.
pub const COSCHEDULING_GROUP_LABEL: &str = "scheduling.x-k8s.io/pod-group";
pub const KIND: &str = "PodGroup";
pub const PLURAL: &str = "podgroups";

/// The gang scheduler the operator makes PodGroups for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GangScheduler {
    Volcano,
    /// scheduler-plugins' coscheduling plugin, in the scheduler of this name.
    Coscheduling {
        scheduler_name: String,
    },
}

impl GangScheduler {
    /// mpi-operator's `--gang-scheduling` values: `volcano`, or any other scheduler name, which is then
    /// taken to run scheduler-plugins' coscheduling (kompi adds `none`, the default).
    pub fn from_flag(value: &str) -> Result<Option<GangScheduler>, String> {
        match value {
            "" | NONE => Ok(None),
            VOLCANO => Ok(Some(GangScheduler::Volcano)),
            name => dns1123_subdomain(name)
                .map(|()| Some(GangScheduler::Coscheduling { scheduler_name: name.into() }))
                .map_err(|why| format!("{why}: expected none, volcano, or the name of the scheduler that runs scheduler-plugins' coscheduling")),
        }
    }

    /// The flag's value that chooses this scheduler.
    pub fn flag(&self) -> &str {
        self.scheduler_name()
    }

    /// The pods' `schedulerName`.
    pub fn scheduler_name(&self) -> &str {
        match self {
            GangScheduler::Volcano => VOLCANO,
            GangScheduler::Coscheduling { scheduler_name } => scheduler_name,
        }
    }

    /// The API group of its PodGroups.
    pub fn group(&self) -> &'static str {
        match self {
            GangScheduler::Volcano => "scheduling.volcano.sh",
            GangScheduler::Coscheduling { .. } => "scheduling.x-k8s.io",
        }
    }

    fn version(&self) -> &'static str {
        match self {
            GangScheduler::Volcano => "v1beta1",
            GangScheduler::Coscheduling { .. } => "v1alpha1",
        }
    }

    pub fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(self.group(), self.version(), KIND), PLURAL)
    }

    /// The CRD that must be installed (the scheduler's own; kompi never installs it).
    pub fn crd_name(&self) -> String {
        format!("{PLURAL}.{}", self.group())
    }

    /// Who publishes that CRD, for the error that asks for it.
    pub fn project(&self) -> &'static str {
        match self {
            GangScheduler::Volcano => "Volcano",
            GangScheduler::Coscheduling { .. } => "scheduler-plugins (its coscheduling plugin)",
        }
    }
}

/// `runPolicy.schedulingPolicy`, checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SchedulingPolicy {
    /// Whether the job sets a `schedulingPolicy` at all.
    pub given: bool,
    pub min_available: Option<u32>,
    /// The policy's queue, else the job's Volcano queue annotation.
    pub queue: Option<String>,
    pub priority_class: Option<String>,
    pub min_resources: Option<BTreeMap<String, Quantity>>,
    pub schedule_timeout_seconds: Option<u32>,
}

/// Reads `spec.runPolicy.schedulingPolicy`; `pods` is the job's pod count (workers + launcher).
pub fn validate_policy(job: &MPIJob, pods: u32, errors: &mut Vec<FieldError>) -> SchedulingPolicy {
    let annotation_queue = job.metadata.annotations.as_ref().and_then(|a| a.get(VOLCANO_QUEUE_ANNOTATION)).filter(|q| !q.is_empty()).cloned();
    let Some(policy) = &job.spec.run_policy.scheduling_policy else {
        return SchedulingPolicy { queue: annotation_queue, ..Default::default() };
    };
    let path = "spec.runPolicy.schedulingPolicy";
    let min_available = policy.min_available.and_then(|n| match u32::try_from(n) {
        Ok(n) if n <= pods => Some(n),
        _ => {
            let detail = format!("must be between 0 and the job's {pods} pods (its workers and launcher): a larger group can never be complete");
            errors.push(invalid(&format!("{path}.minAvailable"), n, &detail));
            None
        }
    });
    let schedule_timeout_seconds = policy.schedule_timeout_seconds.and_then(|s| {
        let seconds = u32::try_from(s).ok();
        if seconds.is_none() {
            errors.push(invalid(&format!("{path}.scheduleTimeoutSeconds"), s, "must be greater than or equal to 0"));
        }
        seconds
    });
    let priority_class = policy.priority_class.clone().filter(|p| !p.is_empty());
    if let Some(Err(why)) = priority_class.as_deref().map(dns1123_subdomain) {
        errors.push(invalid(
            &format!("{path}.priorityClass"),
            format!("{:?}", priority_class.as_deref().unwrap_or_default()),
            &format!("not a PriorityClass name: {why}"),
        ));
    }
    for (resource, amount) in policy.min_resources.iter().flatten() {
        if let Err(why) = quantity::parse(&amount.0) {
            errors.push(invalid(&format!("{path}.minResources[{resource}]"), format!("{:?}", amount.0), &why));
        }
    }
    SchedulingPolicy {
        given: true,
        min_available,
        queue: policy.queue.clone().filter(|q| !q.is_empty()).or(annotation_queue),
        priority_class,
        min_resources: policy.min_resources.clone(),
        schedule_timeout_seconds,
    }
}

/// An RFC 1123 subdomain (PriorityClass and scheduler names): dot-separated labels, at most 253 characters.
fn dns1123_subdomain(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err(format!("{name:?} is longer than 253 characters"));
    }
    name.split('.').try_for_each(dns1123_label)
}

/// The group's size: the policy's `minAvailable`, else every pod of the job.
pub fn min_member(job: &Job) -> u32 {
    job.scheduling.min_available.unwrap_or(job.workers + 1)
}

/// The job's PodGroup for `gang`: named after the job, owned by it, labelled as the operator's.
pub fn pod_group(job: &Job, gang: &GangScheduler) -> DynamicObject {
    let min_member = min_member(job);
    let mut spec = Map::new();
    spec.insert("minMember".into(), json!(min_member));
    if let GangScheduler::Volcano = gang {
        if let Some(queue) = &job.scheduling.queue {
            spec.insert("queue".into(), json!(queue));
        }
        if let Some(class) = priority_class(job) {
            spec.insert("priorityClassName".into(), json!(class));
        }
    }
    if let Some(resources) = min_resources(job, min_member).filter(|r| !r.is_empty()) {
        spec.insert("minResources".into(), json!(resources));
    }
    if let (GangScheduler::Coscheduling { .. }, Some(seconds)) = (gang, job.scheduling.schedule_timeout_seconds) {
        spec.insert("scheduleTimeoutSeconds".into(), json!(seconds));
    }
    let metadata = ObjectMeta {
        name: Some(job.names.name.clone()),
        namespace: Some(job.names.namespace.clone()),
        labels: Some(object_labels(job)),
        owner_references: Some(vec![owner_reference(job)]),
        ..Default::default()
    };
    let mut group = DynamicObject::new(&job.names.name, &gang.api_resource()).data(json!({ "spec": Value::Object(spec) }));
    group.metadata = metadata;
    group
}

/// The policy's priority class, else the launcher's, else the workers'.
fn priority_class(job: &Job) -> Option<String> {
    let of_template = |spec: Option<&PodSpec>| spec.and_then(|s| s.priority_class_name.clone()).filter(|p| !p.is_empty());
    job.scheduling
        .priority_class
        .clone()
        .or_else(|| of_template(job.launcher.template.spec.as_ref()))
        .or_else(|| of_template(job.worker.as_ref().and_then(|w| w.template.spec.as_ref())))
}

/// The policy's `minResources`, else what the first `min_member` pods request (the launcher counted
/// first); none for a group of no pods.
fn min_resources(job: &Job, min_member: u32) -> Option<BTreeMap<String, Quantity>> {
    if let Some(given) = &job.scheduling.min_resources {
        return Some(given.clone());
    }
    if min_member == 0 {
        return None;
    }
    let workers = job.workers.min(min_member - 1);
    let counted = std::iter::once((job.launcher.template.spec.as_ref(), 1)).chain(job.worker.as_ref().map(|w| (w.template.spec.as_ref(), workers)));
    let mut sums: BTreeMap<String, quantity::Amount> = BTreeMap::new();
    for (spec, pods) in counted {
        for container in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
            let resources = container.resources.as_ref();
            let mut each: BTreeMap<&String, &Quantity> = resources.and_then(|r| r.limits.as_ref()).into_iter().flatten().collect();
            each.extend(resources.and_then(|r| r.requests.as_ref()).into_iter().flatten());
            for (name, amount) in each {
                // A quantity the API server accepted always parses; one that does not is left out.
                if let Ok(sum) = quantity::add(sums.get(name).copied(), amount, pods) {
                    sums.insert(name.clone(), sum);
                }
            }
        }
    }
    Some(sums.into_iter().map(|(name, sum)| (name, Quantity(quantity::format(sum)))).collect())
}

/// Puts a pod in its job's group: the scheduler's name, and the annotation or label it reads. A
/// `schedulerName` in the template is replaced, as mpi-operator does: another scheduler would not
/// keep the group together.
pub fn join_group(pod: &mut Pod, job: &Job, gang: &GangScheduler) {
    let group = job.names.name.clone();
    match gang {
        GangScheduler::Volcano => pod.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(VOLCANO_GROUP_ANNOTATION.into(), group),
        GangScheduler::Coscheduling { .. } => pod.metadata.labels.get_or_insert_with(BTreeMap::new).insert(COSCHEDULING_GROUP_LABEL.into(), group),
    };
    if let Some(spec) = pod.spec.as_mut() {
        spec.scheduler_name = Some(gang.scheduler_name().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{launcher_pod, worker_pod};
    use crate::testing::{job_from_yaml, settings};
    use crate::validate::validate;

    const JOB: &str = "
apiVersion: kubeflow.org/v2beta1
kind: MPIJob
metadata: {name: pi, namespace: hpc, uid: u-1}
spec:
  runPolicy:
    schedulingPolicy: {}
  mpiReplicaSpecs:
    Launcher:
      template:
        spec:
          containers:
          - name: launcher
            command: [mpirun]
            resources: {requests: {cpu: 100m, memory: 64Mi}}
    Worker:
      replicas: 3
      template:
        spec:
          containers:
          - name: worker
            resources: {requests: {cpu: '1'}, limits: {cpu: '2', memory: 1Gi, nvidia.com/gpu: '1'}}
          - name: sidecar
            resources: {requests: {cpu: 50m}}
";

    fn with_policy(policy: &str) -> String {
        JOB.replace("schedulingPolicy: {}", &format!("schedulingPolicy: {policy}"))
    }

    fn spec(job: &Job, gang: &GangScheduler) -> Value {
        pod_group(job, gang).data["spec"].clone()
    }

    fn coscheduling() -> GangScheduler {
        GangScheduler::Coscheduling { scheduler_name: "scheduler-plugins-scheduler".into() }
    }

    #[test]
    fn the_flag_takes_mpi_operators_values() {
        assert_eq!(GangScheduler::from_flag("none"), Ok(None));
        assert_eq!(GangScheduler::from_flag(""), Ok(None));
        assert_eq!(GangScheduler::from_flag("volcano"), Ok(Some(GangScheduler::Volcano)));
        assert_eq!(GangScheduler::from_flag("scheduler-plugins-scheduler"), Ok(Some(coscheduling())));
        let e = GangScheduler::from_flag("Volcano!").unwrap_err();
        assert!(e.contains("expected none, volcano, or the name of the scheduler"), "{e}");
        assert_eq!(GangScheduler::Volcano.crd_name(), "podgroups.scheduling.volcano.sh");
        assert_eq!(coscheduling().api_resource().api_version, "scheduling.x-k8s.io/v1alpha1");
        assert_eq!(coscheduling().flag(), "scheduler-plugins-scheduler");
    }

    #[test]
    fn defaults_the_group_to_every_pod_and_the_resources_to_their_requests() {
        let job = job_from_yaml(JOB);
        // Launcher 100m + 3 workers × (1 + 50m); memory 64Mi + 3 × 1Gi (a limit without a request); the GPU limit.
        let expected = json!({"minMember": 4, "minResources": {"cpu": "3250m", "memory": "3136Mi", "nvidia.com/gpu": "3"}});
        assert_eq!(spec(&job, &GangScheduler::Volcano), expected);
        assert_eq!(spec(&job, &coscheduling()), expected, "no timeout unless the policy sets one");
    }

    #[test]
    fn a_smaller_group_counts_the_launcher_and_the_first_workers() {
        let job = job_from_yaml(&with_policy("{minAvailable: 2}"));
        assert_eq!(
            spec(&job, &GangScheduler::Volcano),
            json!({"minMember": 2, "minResources": {"cpu": "1150m", "memory": "1088Mi", "nvidia.com/gpu": "1"}})
        );
        let job = job_from_yaml(&with_policy("{minAvailable: 0}"));
        assert_eq!(spec(&job, &GangScheduler::Volcano), json!({"minMember": 0}));
    }

    #[test]
    fn volcano_gets_queue_and_priority_class_coscheduling_the_timeout() {
        let job = job_from_yaml(&with_policy(
            "{minAvailable: 4, queue: research, priorityClass: high, minResources: {cpu: '8'}, scheduleTimeoutSeconds: 120}",
        ));
        assert_eq!(
            spec(&job, &GangScheduler::Volcano),
            json!({"minMember": 4, "queue": "research", "priorityClassName": "high", "minResources": {"cpu": "8"}})
        );
        assert_eq!(spec(&job, &coscheduling()), json!({"minMember": 4, "minResources": {"cpu": "8"}, "scheduleTimeoutSeconds": 120}));
    }

    #[test]
    fn the_queue_and_priority_class_fall_back_as_in_mpi_operator() {
        let annotated = JOB.replace("uid: u-1}", "uid: u-1, annotations: {scheduling.volcano.sh/queue-name: batch}}");
        let with_class = annotated.replace(
            "    Worker:\n      replicas: 3\n      template:\n        spec:\n",
            "    Worker:\n      replicas: 3\n      template:\n        spec:\n          priorityClassName: worker-class\n",
        );
        let got = spec(&job_from_yaml(&with_class), &GangScheduler::Volcano);
        assert_eq!((&got["queue"], &got["priorityClassName"]), (&json!("batch"), &json!("worker-class")));
        let policy_wins = with_class.replace("schedulingPolicy: {}", "schedulingPolicy: {queue: research}");
        assert_eq!(spec(&job_from_yaml(&policy_wins), &GangScheduler::Volcano)["queue"], "research");
    }

    #[test]
    fn the_group_is_the_jobs_own() {
        let job = job_from_yaml(JOB);
        let group = pod_group(&job, &GangScheduler::Volcano);
        assert_eq!(group.types.as_ref().map(|t| (t.api_version.as_str(), t.kind.as_str())), Some(("scheduling.volcano.sh/v1beta1", "PodGroup")));
        assert_eq!((group.metadata.name.as_deref(), group.metadata.namespace.as_deref()), (Some("pi"), Some("hpc")));
        assert_eq!(group.metadata.owner_references, Some(vec![owner_reference(&job)]));
        assert_eq!(group.metadata.labels.unwrap()["app.kubernetes.io/managed-by"], "kompi-operator");
    }

    #[test]
    fn every_pod_joins_the_group() {
        let job = job_from_yaml(JOB);
        let mut volcano = settings();
        volcano.gang = Some(GangScheduler::Volcano);
        for pod in [launcher_pod(&job, &volcano, 0), worker_pod(&job, 2, &volcano).unwrap()] {
            assert_eq!(pod.spec.as_ref().unwrap().scheduler_name.as_deref(), Some("volcano"));
            assert_eq!(pod.metadata.annotations.as_ref().unwrap()[VOLCANO_GROUP_ANNOTATION], "pi");
        }
        let mut plugins = settings();
        plugins.gang = Some(coscheduling());
        for pod in [launcher_pod(&job, &plugins, 0), worker_pod(&job, 0, &plugins).unwrap()] {
            assert_eq!(pod.spec.as_ref().unwrap().scheduler_name.as_deref(), Some("scheduler-plugins-scheduler"));
            assert_eq!(pod.metadata.labels.as_ref().unwrap()[COSCHEDULING_GROUP_LABEL], "pi");
        }
        let plain = launcher_pod(&job, &settings(), 0);
        assert_eq!(plain.spec.unwrap().scheduler_name, None, "no gang scheduler, no change");
    }

    #[test]
    fn bad_values_name_their_yaml_path() {
        let object: MPIJob = serde_saphyr::from_str(&with_policy(
            "{minAvailable: 5, priorityClass: High_Class, scheduleTimeoutSeconds: -1, minResources: {cpu: lots}}",
        ))
        .unwrap();
        let e = validate(&object).unwrap_err().to_string();
        for expected in [
            "spec.runPolicy.schedulingPolicy.minAvailable: Invalid value: 5: must be between 0 and the job's 4 pods",
            "spec.runPolicy.schedulingPolicy.priorityClass: Invalid value: \"High_Class\": not a PriorityClass name",
            "spec.runPolicy.schedulingPolicy.scheduleTimeoutSeconds: Invalid value: -1: must be greater than or equal to 0",
            "spec.runPolicy.schedulingPolicy.minResources[cpu]: Invalid value: \"lots\": \"lots\" is not a quantity",
        ] {
            assert!(e.contains(expected), "{expected}\nin: {e}");
        }
        let object: MPIJob = serde_saphyr::from_str(&with_policy("{minAvailable: -1}")).unwrap();
        assert!(validate(&object).unwrap_err().to_string().contains("minAvailable: Invalid value: -1"));
    }
}
