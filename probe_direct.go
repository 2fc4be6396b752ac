//go:build wssafe_probe

package wssafe

// ProbeDirect reports whether e writes data frames itself (the coder
// version guard let it: see coderDirect). It exists only in builds tagged
// wssafe_probe, for the test that builds a real binary
// (testdata/coderdirect) and checks the guard against its build
// information.
func ProbeDirect(e *Endpoint) bool { return e.cfg.direct }
