// Package prometheus holds Stillpoint's shipped Prometheus alert rules
// (the YAML files beside this one) and the test that checks them with
// promtool.
package prometheus
