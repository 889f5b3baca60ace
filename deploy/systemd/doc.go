// Package systemd holds Stillpoint's systemd units, the example server and
// agent configs they name, and the sysusers.d/tmpfiles.d files they rely
// on (the files beside this one), and the test that checks them with
// Debian's systemd tools (systemd-analyze verify and security,
// systemd-sysusers, systemd-tmpfiles). The example configs are loaded
// through the binary's own config loaders in cmd/stillpoint.
package systemd
