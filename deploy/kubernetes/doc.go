// Package kubernetes holds Stillpoint's Kubernetes manifests (the YAML
// files beside this one: the coordinator StatefulSet and its Services,
// ConfigMap and PodDisruptionBudget; Ledger and Auditor pods with the agent
// sidecar) and the test that decodes them strictly into the k8s.io/api
// types and checks their cross-references. The configs and command lines
// they give the binary are checked against its own loaders in
// cmd/stillpoint.
package kubernetes
