//! The CustomResourceDefinition of `mpijobs.kubeflow.org` (apiextensions.k8s.io/v1, which Kubernetes 1.20
//! serves): names, status subresource and printer columns from the type's derive, the structural schema
//! from `crd-schema.yaml`.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceValidation, JSONSchemaProps,
};
use kube::CustomResourceExt;

use crate::api::MPIJob;
use crate::contract::{LABEL_MANAGED_BY, MANAGED_BY};

pub const CRD_NAME: &str = "mpijobs.kubeflow.org";
const SCHEMA: &str = include_str!("crd-schema.yaml");

/// The schema, parsed; the file is part of the binary, so a parse failure is a bug caught by the tests.
pub fn schema() -> JSONSchemaProps {
    serde_saphyr::from_str(SCHEMA).expect("crd-schema.yaml is a JSONSchemaProps")
}

/// kompi's MPIJob CRD, labelled as kompi's (an install never overwrites someone else's).
pub fn crd() -> CustomResourceDefinition {
    let mut crd = MPIJob::crd();
    crd.metadata.labels = Some(BTreeMap::from([(LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string())]));
    for version in &mut crd.spec.versions {
        version.schema = Some(CustomResourceValidation { open_api_v3_schema: Some(schema()) });
    }
    crd
}

/// Whether a CRD found in a cluster is kompi's own.
pub fn is_kompis(crd: &CustomResourceDefinition) -> bool {
    crd.metadata.labels.as_ref().and_then(|l| l.get(LABEL_MANAGED_BY)).is_some_and(|v| v == MANAGED_BY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn served_as_v2beta1_with_status_and_columns() {
        let crd = crd();
        assert_eq!(crd.metadata.name.as_deref(), Some(CRD_NAME));
        assert_eq!((crd.spec.group.as_str(), crd.spec.scope.as_str(), crd.spec.names.kind.as_str()), ("kubeflow.org", "Namespaced", "MPIJob"));
        let v = &crd.spec.versions[0];
        assert_eq!((v.name.as_str(), v.served, v.storage), ("v2beta1", true, true));
        assert!(v.subresources.as_ref().unwrap().status.is_some());
        let columns: Vec<&str> = v.additional_printer_columns.iter().flatten().map(|c| c.name.as_str()).collect();
        assert_eq!(columns, ["State", "Workers", "Ready", "Age"]);
        assert!(is_kompis(&crd));
    }

    /// Every key the Rust types write must be in the schema, or the API server would prune it.
    #[test]
    fn the_schema_covers_every_field_the_types_write() {
        let full: Value = serde_saphyr::from_str(include_str!("../tests/fixtures/every-field.yaml")).unwrap();
        let job: MPIJob = serde_json::from_value(full.clone()).unwrap();
        let written = serde_json::to_value(&job).unwrap();
        assert_eq!(written["spec"], full["spec"], "the fixture must round-trip, or it does not cover what the types write");
        let schema = serde_json::to_value(schema()).unwrap();
        let mut missing = Vec::new();
        // metadata is the API server's own; everything else is the schema's.
        for part in ["spec", "status"] {
            walk(&written[part], &schema["properties"][part], &format!(".{part}"), &mut missing);
        }
        assert!(missing.is_empty(), "not in crd-schema.yaml: {missing:?}");
    }

    fn walk(value: &Value, schema: &Value, path: &str, missing: &mut Vec<String>) {
        if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
            return;
        }
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let sub = schema.get("properties").and_then(|p| p.get(key)).or_else(|| schema.get("additionalProperties"));
                    match sub {
                        Some(sub) => walk(child, sub, &format!("{path}.{key}"), missing),
                        None => missing.push(format!("{path}.{key}")),
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    walk(item, &schema["items"], &format!("{path}[]"), missing);
                }
            }
            _ => {}
        }
    }
}
