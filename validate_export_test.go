package wssafe

// CheckJSON runs the scan that every JSON decode (JSON, Router, Integrity)
// starts with, under l (zero fields meaning the defaults) and without
// folding the case of keys, so that tests and fuzzers can drive it with
// any limits and without a session.
func CheckJSON(data []byte, l JSONLimits) error {
	if me := scanJSON(data, l.resolve(), false); me != nil {
		return me
	}
	return nil
}
