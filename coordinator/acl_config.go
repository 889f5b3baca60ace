package coordinator

// ACLConfig switches token enforcement on the coordinator API (Consul's
// model: enabled by config, then `stillpoint acl bootstrap` once per
// cluster prints the first admin token).
//
// With Enabled false nothing is enforced: anyone who reaches the API may
// pause (the server logs a warning at start). With Enabled true every
// CoordinatorService call needs a token whose role covers the method
// (methodRoles); before the bootstrap only ACLBootstrap and the
// GetServerInfo (servers call it at bootstrap) are served.
type ACLConfig struct {
	Enabled bool `yaml:"enabled"`
	// ProtectHealth makes the gRPC health service need a read token too
	// (by default it stays readable without one, as do /healthz, /readyz
	// and /metrics on the HTTP address). Server reflection is always
	// readable without a token: it serves the published schema.
	ProtectHealth bool `yaml:"protect_health"`
}
