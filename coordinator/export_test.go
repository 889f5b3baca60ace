package coordinator

// MinHold is the runner's hold formula (SPEC "Pause protocol" step 4), for
// the e2e tests' exact check of a recorded hold against its ack bounds.
var MinHold = minHold
