//! Every default of the resource model, in one place.
//!
//! Objects are stored defaulted, so that `berth get -o yaml` shows what berth
//! actually does, and so that writing a default explicitly is not a spec
//! change (no new generation, no recreated container). Field docs name the
//! same defaults; a test keeps them from drifting apart.

use super::container::{DependencyCondition, Protocol, RestartPolicy, UpdateStrategy};
use super::image::PullPolicy;
use super::route::{LoadBalancing, PathMatchType};
use super::volume::ReclaimPolicy;
use super::{AnyObject, DurationSpec};

/// Replicas of a Container.
pub const REPLICAS: i64 = 1;
/// Stop grace period of a Container.
pub const STOP_GRACE_PERIOD: &str = "10s";
/// Health check interval of a Container.
pub const HEALTH_INTERVAL: &str = "10s";
/// Health check timeout of a Container.
pub const HEALTH_TIMEOUT: &str = "5s";
/// Health check retries of a Container.
pub const HEALTH_RETRIES: i64 = 3;
/// Health check start period of a Container.
pub const HEALTH_START_PERIOD: &str = "0s";
/// Volume driver.
pub const VOLUME_DRIVER: &str = "local";
/// Network driver.
pub const NETWORK_DRIVER: &str = "bridge";
/// Dockerfile path inside a build context.
pub const DOCKERFILE: &str = "Dockerfile";
/// DNS record TTL in seconds.
pub const DNS_TTL: i64 = 30;
/// Route health check interval.
pub const ROUTE_HEALTH_INTERVAL: &str = "5s";
/// Route health check timeout.
pub const ROUTE_HEALTH_TIMEOUT: &str = "2s";
/// Successes before a backend is used again.
pub const ROUTE_HEALTHY_THRESHOLD: i64 = 1;
/// Failures before a backend is taken out.
pub const ROUTE_UNHEALTHY_THRESHOLD: i64 = 2;
/// Backend weight.
pub const BACKEND_WEIGHT: i64 = 1;

/// The tag an Image produces when it names none.
pub fn image_tag(namespace: &str, name: &str) -> String {
    format!("berth.local/{namespace}/{name}:latest")
}

fn duration(text: &str) -> Option<DurationSpec> {
    Some(DurationSpec(text.to_string()))
}

/// Fills every unset field that has a default. Idempotent.
pub fn apply(object: &mut AnyObject) {
    let namespace = object.metadata().namespace().to_string();
    object.metadata_mut().namespace = Some(namespace.clone());
    match object {
        AnyObject::Container(o) => {
            let spec = &mut o.spec;
            spec.replicas.get_or_insert(REPLICAS);
            spec.restart_policy.get_or_insert(RestartPolicy::Always);
            spec.update_strategy.get_or_insert(UpdateStrategy::Recreate);
            spec.stop_grace_period.get_or_insert_with(|| DurationSpec(STOP_GRACE_PERIOD.into()));
            for port in &mut spec.ports {
                port.protocol.get_or_insert(Protocol::TCP);
            }
            for dependency in &mut spec.depends_on {
                dependency.condition.get_or_insert(DependencyCondition::Started);
            }
            if let Some(check) = &mut spec.health_check {
                check.interval = check.interval.take().or_else(|| duration(HEALTH_INTERVAL));
                check.timeout = check.timeout.take().or_else(|| duration(HEALTH_TIMEOUT));
                check.start_period = check.start_period.take().or_else(|| duration(HEALTH_START_PERIOD));
                check.retries.get_or_insert(HEALTH_RETRIES);
                if let Some(http) = &mut check.http_get {
                    http.path.get_or_insert_with(|| "/".into());
                }
            }
        }
        AnyObject::Volume(o) => {
            o.spec.driver.get_or_insert_with(|| VOLUME_DRIVER.into());
            o.spec.reclaim_policy.get_or_insert(ReclaimPolicy::Retain);
        }
        AnyObject::Network(o) => {
            o.spec.driver.get_or_insert_with(|| NETWORK_DRIVER.into());
        }
        AnyObject::Image(o) => {
            let name = o.metadata.name.clone();
            o.spec.tag.get_or_insert_with(|| image_tag(&namespace, &name));
            if let Some(build) = &mut o.spec.build {
                if build.dockerfile_inline.is_none() {
                    build.dockerfile.get_or_insert_with(|| DOCKERFILE.into());
                }
            }
            if let Some(pull) = &mut o.spec.pull {
                pull.policy.get_or_insert(PullPolicy::IfNotPresent);
            }
        }
        AnyObject::DnsRecord(o) => {
            let name = o.metadata.name.clone();
            o.spec.name.get_or_insert(name);
            o.spec.ttl.get_or_insert(DNS_TTL);
        }
        AnyObject::Route(o) => {
            let spec = &mut o.spec;
            spec.load_balancing.get_or_insert(LoadBalancing::RoundRobin);
            for rule in &mut spec.rules {
                for path in &mut rule.matches {
                    path.match_type.get_or_insert(PathMatchType::PathPrefix);
                }
                for backend in &mut rule.backends {
                    backend.weight.get_or_insert(BACKEND_WEIGHT);
                }
            }
            if let Some(check) = &mut spec.health_check {
                check.path.get_or_insert_with(|| "/".into());
                check.interval = check.interval.take().or_else(|| duration(ROUTE_HEALTH_INTERVAL));
                check.timeout = check.timeout.take().or_else(|| duration(ROUTE_HEALTH_TIMEOUT));
                check.healthy_threshold.get_or_insert(ROUTE_HEALTHY_THRESHOLD);
                check.unhealthy_threshold.get_or_insert(ROUTE_UNHEALTHY_THRESHOLD);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Container, ContainerSpec, IntoAny};

    #[test]
    fn defaulting_is_idempotent_and_fills_the_documented_values() {
        let spec = ContainerSpec { image: Some("busybox".into()), ..Default::default() };
        let mut object = Container::new("web", spec).into_any();
        apply(&mut object);
        let once = object.clone();
        apply(&mut object);
        assert_eq!(object, once);
        let AnyObject::Container(c) = object else { unreachable!() };
        assert_eq!(c.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(c.spec.replicas, Some(1));
        assert_eq!(c.spec.stop_grace_period, Some(DurationSpec("10s".into())));
    }
}
