//! The controller: kube-runtime's `Controller` over MPIJobs, triggered by the pods, Services and
//! ConfigMaps the operator made (one watch each, filtered by the operator's label; the same watches fill
//! the stores reconciles read, so nothing is polled). Each reconcile hands the job, its status and its
//! pods to `kompi_job::plan` and carries the plan out.
//!
//! Objects are created with `create` and changed with server-side apply (field manager
//! `kompi-operator`): a same-named object that is not the job's is never adopted, changed or deleted;
//! the job fails instead, naming it. Pods are deleted only with their observed uid as a precondition.
//!
//! With leader election (`leader`), every replica watches (a standby's stores are as current as the
//! leader's, so it takes over without listing anything), but only the leader reconciles; on losing the
//! Lease the operator stops at once, in-flight reconciles included.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kompi_job::api::{API_VERSION, KIND};
use kompi_job::build::{Settings, ssh_secret};
use kompi_job::contract::{FIELD_MANAGER, LABEL_MANAGED_BY, MANAGED_BY};
use kompi_job::managed::{Claim, is_ours};
use kompi_job::status::{self, Transition};
use kompi_job::{Job, JobStatus, MPIJob, plan, validate};
use kompi_spec::sshkey::{KeyType, generate};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::reflector::reflector;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::error::OperatorError;
use crate::podgroup::PodGroups;
use crate::http::{self, Endpoints};
use crate::leader::{Elector, LeaseSettings};
use crate::metrics::{CONDITIONS, Metrics};

/// How long a failed reconcile waits before it is tried again.
const RETRY: Duration = Duration::from_secs(5);
/// How long a reconcile waits for the job's earlier object of the same name to be garbage-collected.
const GC_WAIT: Duration = Duration::from_secs(2);

/// The operator's configuration (its command-line flags).
#[derive(Clone, Debug)]
pub struct Config {
    pub claim: Claim,
    pub settings: Settings,
    /// Serve `/healthz`, `/readyz` (every watch has listed what exists) and `/metrics` on this port.
    pub http_port: Option<u16>,
    /// Reconcile only while holding this Lease; `None`: always (a single replica).
    pub leader: Option<LeaseSettings>,
}

struct Context {
    client: Client,
    config: Config,
    pods: Store<Pod>,
    services: Store<Service>,
    config_maps: Store<ConfigMap>,
    recorder: Recorder,
    jobs: Store<MPIJob>,
    metrics: Arc<Metrics>,
    /// True while this replica leads (always, without leader election).
    leading: watch::Receiver<bool>,
    /// Jobs (by uid) whose key Secret exists: it is created once, never read and never changed.
    secrets: Mutex<HashSet<String>>,
    /// With `--gang-scheduling`: the jobs' PodGroups.
    pod_groups: Option<PodGroups>,
    /// Turns true once every watch has listed what exists. A store's own `wait_until_ready` wakes only
    /// the last of several concurrent waiters (it is a one-waker oneshot), so it has one waiter:
    /// `mark_synced`; reconciles and the readiness probe wait on this channel instead.
    synced: watch::Receiver<bool>,
}

/// Runs the controller until SIGTERM or SIGINT.
pub async fn run(client: Client, config: Config) -> Result<(), OperatorError> {
    let jobs: Api<MPIJob> = Api::all(client.clone());
    jobs.list(&ListParams::default().limit(1)).await.map_err(|e| match &e {
        kube::Error::Api(s) if s.code == 404 => {
            OperatorError::Stopped("the MPIJob CRD (mpijobs.kubeflow.org) is not installed: run `kompi operator install`".into())
        }
        _ => OperatorError::api("listing MPIJobs", e),
    })?;
    if let Some(gang) = &config.settings.gang {
        PodGroups::check_installed(&client, gang).await?;
    }
    let metrics = Arc::new(Metrics::default());
    let owned = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}"));
    let (pod_groups, pod_group_events) = match &config.settings.gang {
        Some(gang) => {
            let (groups, events) = PodGroups::watch(client.clone(), gang, owned.clone());
            (Some(groups), Some(events))
        }
        None => (None, None),
    };
    let (pods, pods_writer) = reflector::store();
    let (services, services_writer) = reflector::store();
    let (config_maps, config_maps_writer) = reflector::store();
    let pod_events = watcher(Api::<Pod>::all(client.clone()), owned.clone())
        .default_backoff()
        .inspect(count_failures(&metrics, "pods"))
        .reflect(pods_writer)
        .touched_objects();
    let service_events = watcher(Api::<Service>::all(client.clone()), owned.clone())
        .default_backoff()
        .inspect(count_failures(&metrics, "services"))
        .reflect(services_writer)
        .touched_objects();
    let config_map_events = watcher(Api::<ConfigMap>::all(client.clone()), owned)
        .default_backoff()
        .inspect(count_failures(&metrics, "configmaps"))
        .reflect(config_maps_writer)
        .touched_objects();
    let (jobs_store, jobs_writer) = reflector::store();
    let job_events =
        reflector(jobs_writer, watcher(jobs, watcher::Config::default()).default_backoff().inspect(count_failures(&metrics, "mpijobs"))).applied_objects();
    let (synced_tx, synced) = watch::channel(false);
    let (leading_tx, leading) = watch::channel(config.leader.is_none());
    let reporter = Reporter { controller: FIELD_MANAGER.into(), instance: std::env::var("HOSTNAME").ok() };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        jobs: jobs_store.clone(),
        metrics,
        leading,
        client: client.clone(),
        config: config.clone(),
        pods,
        services,
        config_maps,
        secrets: Mutex::new(HashSet::new()),
        pod_groups,
        synced,
    });
    tokio::spawn(mark_synced(ctx.clone(), synced_tx));
    if let Some(port) = config.http_port {
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
            .await
            .map_err(|e| OperatorError::Stopped(format!("cannot listen on port {port} for /metrics, /healthz and /readyz: {e}")))?;
        tokio::spawn(http::serve(listener, ctx.clone()));
    }
    let gang = config.settings.gang.as_ref().map_or("none", |g| g.flag());
    info!(claim = ?config.claim, image = %config.settings.injection.image, gang_scheduling = gang, "kompi operator started");
    let mut controller = Controller::for_stream(job_events, jobs_store).owns_stream(pod_events).owns_stream(service_events).owns_stream(config_map_events);
    if let (Some(events), Some(groups)) = (pod_group_events, &ctx.pod_groups) {
        controller = controller.owns_stream_with(events, groups.resource().clone());
    }
    let controller = controller
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            match result {
                Ok((job, _)) => debug!(job = %job, "reconciled"),
                Err(e) => debug!(error = %e, "reconcile failed"),
            }
        });
    let Some(settings) = config.leader else {
        ctx.metrics.set_leader(true);
        controller.await;
        info!("kompi operator stopped");
        return Ok(());
    };
    let mut elector = Elector::new(client, settings);
    let lost = {
        let lead = async {
            elector.acquire().await;
            ctx.metrics.set_leader(true);
            leading_tx.send_replace(true);
            elector.hold().await
        };
        tokio::select! {
            () = controller => None,
            lost = lead => Some(lost),
        }
    };
    if let Some(lost) = lost {
        // Dropping the controller ended its reconciles; another replica takes over once the Lease expires.
        ctx.metrics.set_leader(false);
        return Err(lost);
    }
    // Stopped by a signal, its reconciles finished: hand the Lease over now rather than when it expires.
    elector.release().await;
    info!("kompi operator stopped");
    Ok(())
}

/// Counts a watch's failures: after each, the watcher backs off and starts the watch again.
fn count_failures<K>(metrics: &Arc<Metrics>, watch: &'static str) -> impl FnMut(&Result<watcher::Event<K>, watcher::Error>) + use<K> {
    let metrics = metrics.clone();
    move |event| {
        if event.is_err() {
            metrics.watch_restarted(watch);
        }
    }
}

/// Tells every waiter once the stores are filled (the stores' only waiter).
async fn mark_synced(ctx: Arc<Context>, synced: watch::Sender<bool>) {
    let pod_groups = async {
        match &ctx.pod_groups {
            Some(groups) => groups.wait_until_ready().await,
            None => Ok(()),
        }
    };
    if tokio::try_join!(ctx.pods.wait_until_ready(), ctx.services.wait_until_ready(), ctx.config_maps.wait_until_ready(), pod_groups).is_ok() {
        synced.send_replace(true);
    }
}

/// Until the watches listed everything, "no pod" would mean "create it".
async fn wait_synced(ctx: &Context) -> Result<(), OperatorError> {
    let mut synced = ctx.synced.clone();
    synced.wait_for(|s| *s).await.map(|_| ()).map_err(|_| OperatorError::Stopped("a watch ended before it listed what exists".into()))
}

/// Ready once every watch has listed what exists, leader and standby alike: a standby is ready to take
/// over at once, and a rollout of the Deployment must not wait for a replica that may never lead.
impl Endpoints for Context {
    fn ready(&self) -> bool {
        *self.synced.borrow()
    }

    fn metrics(&self) -> String {
        let mut jobs = [0; CONDITIONS.len()];
        for job in self.jobs.state() {
            let status = job.status.clone().unwrap_or_default();
            for (n, condition) in jobs.iter_mut().zip(CONDITIONS) {
                *n += u64::from(status.is(condition));
            }
        }
        self.metrics.render(&jobs)
    }
}

fn error_policy(job: Arc<MPIJob>, error: &OperatorError, _ctx: Arc<Context>) -> Action {
    warn!(job = %id(&job), error = %error, "reconcile failed; retrying in {}s", RETRY.as_secs());
    Action::requeue(RETRY)
}

fn id(job: &MPIJob) -> String {
    format!("{}/{}", job.namespace().unwrap_or_default(), job.name_any())
}

async fn reconcile(job: Arc<MPIJob>, ctx: Arc<Context>) -> Result<Action, OperatorError> {
    if !is_ours(job.spec.run_policy.managed_by.as_deref(), ctx.config.claim) || job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if !*ctx.leading.borrow() {
        // A standby: once it leads, reconcile from the job as it is then, not as it was when this began.
        let mut leading = ctx.leading.clone();
        leading.wait_for(|l| *l).await.map_err(|_| OperatorError::Stopped("leader election ended".into()))?;
        return Ok(Action::requeue(Duration::ZERO));
    }
    let span = info_span!("reconcile", job = %id(&job));
    let started = Instant::now();
    let result = async {
        wait_synced(&ctx).await?;
        let now = Time(Timestamp::now());
        let current = job.status.clone().unwrap_or_default();
        match validate(&job) {
            Err(problems) => {
                let (next, events) = status::invalid(&current, &problems, &now);
                finish(&job, &ctx, &current, next, events).await?;
                Ok(Action::await_change())
            }
            Ok(valid) => carry_out(&job, &valid, &ctx, current, &now).await,
        }
    }
    .instrument(span)
    .await;
    ctx.metrics.reconciled(result.is_ok(), started.elapsed());
    result
}

async fn carry_out(job: &MPIJob, valid: &Job, ctx: &Context, current: JobStatus, now: &Time) -> Result<Action, OperatorError> {
    let namespace = valid.names.namespace.as_str();
    let owned: Vec<Arc<Pod>> = ctx.pods.state().into_iter().filter(|p| p.namespace().as_deref() == Some(namespace) && owned_by(&**p, &valid.uid)).collect();
    let pods: Vec<&Pod> = owned.iter().map(|p| &**p).collect();
    let plan = plan(valid, &current, &pods, &ctx.config.settings, now);

    let outcome = async {
        if plan.needs_secret {
            ensure_secret(valid, ctx).await?;
        }
        if let Some(service) = &plan.service {
            ensure(ctx, &ctx.services, service, &valid.uid, |a, b| a.spec == b.spec).await?;
        }
        if let Some(config_map) = &plan.config_map {
            ensure(ctx, &ctx.config_maps, config_map, &valid.uid, |a, b| a.data == b.data).await?;
        }
        // The group before its pods: a gang scheduler must know the group when it first sees a member.
        if let (Some(group), Some(groups)) = (&plan.pod_group, &ctx.pod_groups) {
            groups.ensure(group, &valid.uid).await?;
        }
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
        for pod in &plan.create {
            create_or_adopted(&api, pod, &valid.uid).await?;
            info!(pod = pod.name_any(), "created");
        }
        for name in &plan.delete {
            delete_pod(&api, &owned, name).await?;
        }
        if let (true, Some(groups)) = (plan.delete_pod_group, &ctx.pod_groups) {
            groups.delete(namespace, &valid.names.name, &valid.uid).await?;
        }
        Ok::<(), OperatorError>(())
    }
    .await;
    match outcome {
        Ok(()) => {
            finish(job, ctx, &current, plan.status, plan.events).await?;
            if plan.delete_job {
                delete_expired(job, ctx).await?;
                return Ok(Action::await_change());
            }
            // A deadline or a TTL: no watch event announces it, so look again when it falls due.
            Ok(plan.requeue_after.map_or_else(Action::await_change, |seconds| Action::requeue(Duration::from_secs(seconds))))
        }
        Err(OperatorError::Conflict(message)) => {
            let (next, mut events) = status::failed(&plan.status, status::reason::RESOURCE_EXISTS, &message, now);
            events.splice(0..0, plan.events);
            finish(job, ctx, &current, next, events).await?;
            Ok(Action::await_change())
        }
        Err(OperatorError::Pending(why)) => {
            info!("{why}; trying again in {}s", GC_WAIT.as_secs());
            Ok(Action::requeue(GC_WAIT))
        }
        Err(e) => Err(e),
    }
}

pub(crate) fn owned_by<K: Resource>(object: &K, uid: &str) -> bool {
    object.meta().owner_references.iter().flatten().any(|o| o.controller == Some(true) && o.uid == uid)
}

fn owned_by_an_mpijob<K: Resource>(object: &K) -> bool {
    object.meta().owner_references.iter().flatten().any(|o| o.controller == Some(true) && o.kind == KIND && o.api_version == API_VERSION)
}

/// The key Secret: made once per job, in memory; never read back (the operator may not read Secrets).
async fn ensure_secret(job: &Job, ctx: &Context) -> Result<(), OperatorError> {
    let known = |ctx: &Context| ctx.secrets.lock().unwrap_or_else(PoisonError::into_inner).contains(&job.uid);
    if known(ctx) {
        return Ok(());
    }
    let key = generate(KeyType::Ed25519, &format!("kompi-{}", job.names.name), &mut ssh_key::rand_core::OsRng)
        .map_err(|e| OperatorError::Key(e.to_string()))?;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &job.names.namespace);
    let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    match api.create(&params, &ssh_secret(job, &key)).await {
        Ok(_) => info!(secret = job.names.ssh_secret(), "created the job's ssh key"),
        // Made by an earlier reconcile of this job (before a restart of the operator).
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(OperatorError::api(format!("creating Secret {}", job.names.ssh_secret()), e)),
    }
    ctx.secrets.lock().unwrap_or_else(PoisonError::into_inner).insert(job.uid.clone());
    Ok(())
}

/// Makes `desired` exist as the job's: created when absent, applied when it differs from what the store
/// holds. A same-named object that is not the job's is a conflict.
async fn ensure<K>(ctx: &Context, store: &Store<K>, desired: &K, uid: &str, same: impl Fn(&K, &K) -> bool) -> Result<(), OperatorError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope> + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let name = desired.name_any();
    let namespace = desired.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    match store.get(&ObjectRef::new(&name).within(&namespace)) {
        Some(existing) if owned_by(&*existing, uid) => {
            if !same(&existing, desired) {
                let params = PatchParams::apply(FIELD_MANAGER).force();
                api.patch(&name, &params, &Patch::Apply(desired)).await.map_err(|e| OperatorError::api(format!("applying {} {name}", K::kind(&())), e))?;
                debug!(kind = %K::kind(&()), name, "applied");
            }
            Ok(())
        }
        Some(existing) => Err(not_ours(&K::kind(&()), &*existing)),
        None => create_or_adopted(&api, desired, uid).await,
    }
}

/// Creates an object; if one of that name exists it must be the job's (the store had not seen it yet).
async fn create_or_adopted<K>(api: &Api<K>, object: &K, uid: &str) -> Result<(), OperatorError>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = object.name_any();
    let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    match api.create(&params, object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = api.get(&name).await.map_err(|e| OperatorError::api(format!("reading {} {name}", K::kind(&())), e))?;
            if owned_by(&existing, uid) { Ok(()) } else { Err(not_ours(&K::kind(&()), &existing)) }
        }
        Err(e) => Err(OperatorError::api(format!("creating {} {name}", K::kind(&())), e)),
    }
}

/// The error for an existing object of kind `kind` that is not the job's.
pub(crate) fn not_ours<K: Resource>(kind: &str, existing: &K) -> OperatorError {
    // Two MPIJobs cannot share a name at once: this is an earlier one's, which the garbage collector removes.
    if owned_by_an_mpijob(existing) {
        return OperatorError::Pending(format!("{kind} {} of an earlier MPIJob of the same name is being garbage-collected", existing.name_any()));
    }
    OperatorError::Conflict(format!(
        "{kind} {} already exists in namespace {} and is not this MPIJob's: delete it, or give the job another name",
        existing.name_any(),
        existing.namespace().unwrap_or_default()
    ))
}

/// Deletes a pod of the job, only the very one observed (its uid is the precondition).
async fn delete_pod(api: &Api<Pod>, owned: &[Arc<Pod>], name: &str) -> Result<(), OperatorError> {
    let Some(uid) = owned.iter().find(|p| p.name_any() == name).and_then(|p| p.uid()) else { return Ok(()) };
    let params = DeleteParams { preconditions: Some(Preconditions { uid: Some(uid), ..Default::default() }), ..Default::default() };
    match api.delete(name, &params).await {
        Ok(_) => {
            info!(pod = name, "deleted");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(OperatorError::api(format!("deleting Pod {name}"), e)),
    }
}

/// Deletes a finished MPIJob whose `ttlSecondsAfterFinished` ran out (Kubernetes 1.20 has no TTL
/// controller for it), the very one observed (its uid is the precondition). Foreground propagation: the
/// garbage collector removes its pods, Service, ConfigMap and Secret first, then the MPIJob.
async fn delete_expired(job: &MPIJob, ctx: &Context) -> Result<(), OperatorError> {
    let api: Api<MPIJob> = Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let params = DeleteParams {
        preconditions: Some(Preconditions { uid: job.uid(), ..Default::default() }),
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..Default::default()
    };
    match api.delete(&job.name_any(), &params).await {
        Ok(_) => {
            info!("ttlSecondsAfterFinished ran out: deleted the MPIJob and all it made");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(OperatorError::api("deleting the expired MPIJob", e)),
    }
}

/// Writes the status when it changed (server-side apply on the status subresource) and records the events.
async fn finish(job: &MPIJob, ctx: &Context, current: &JobStatus, next: JobStatus, events: Vec<Transition>) -> Result<(), OperatorError> {
    if &next != current {
        let api: Api<MPIJob> = Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
        // The job's resourceVersion is the write's precondition: a status decided from a job that has
        // changed since (this operator's own last status write, most often) must not overwrite the newer
        // one. The newer version's reconcile, which its watch event brings, decides instead.
        let patch = serde_json::json!({ "apiVersion": API_VERSION, "kind": KIND, "metadata": { "resourceVersion": job.resource_version() }, "status": next });
        match api.patch_status(&job.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                debug!("status not written: the job changed since this reconcile read it");
                return Ok(());
            }
            Err(e) => return Err(OperatorError::api("writing the MPIJob's status", e)),
        }
        for condition in CONDITIONS {
            if next.is(condition) && !current.is(condition) {
                ctx.metrics.transition(condition);
            }
        }
    }
    let reference = job.object_ref(&());
    for t in events {
        if t.warning {
            warn!(reason = %t.reason, "{}", t.message);
        } else {
            info!(reason = %t.reason, "{}", t.message);
        }
        let event = Event {
            type_: if t.warning { EventType::Warning } else { EventType::Normal },
            reason: t.reason,
            note: Some(t.message),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            warn!(error = %e, "cannot record an event");
        }
    }
    Ok(())
}
