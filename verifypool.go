package wssafe

// The verifying goroutines that check every token off the session's own
// goroutine, so that jwx's deep stack is not kept by each session.

import (
	"context"
	"time"
)

// Tokens are verified on goroutines of their own. jwx's parse and verify
// path is deep enough to grow a goroutine's stack from 8 to 16 KiB, and
// the runtime gives a grown stack back only when less than a quarter of it
// is in use, which an idle session's goroutine (parked in its read) never
// gets below: verifying on the session's goroutine cost every
// authenticated session 8 KiB for as long as it lived. A goroutine per
// token fixed that but grew a fresh stack for every token, copying it
// several times (a tenth of an authenticated handshake's CPU). So the
// verifying goroutines outlive a verification: one that finishes waits
// verifierIdle for the next token, keeping its grown stack, then exits.
// There are as many as there are concurrent verifications, never a queue.

// verifierIdle is how long a verifying goroutine waits for another token.
const verifierIdle = time.Second

// A verifyJob is one token handed to a verifying goroutine.
type verifyJob struct {
	ctx      context.Context
	raw      []byte
	id       *identity
	err      error
	panicked any
	done     chan struct{} // closed when the fields above are set
}

// verifyAside is verify on a verifying goroutine, which the caller waits
// for. A panic in verify is raised again on the caller's goroutine, where
// it would have happened.
func (a *authenticator) verifyAside(ctx context.Context, raw []byte) (*identity, error) {
	job := &verifyJob{ctx: ctx, raw: raw, done: make(chan struct{})}
	select {
	case a.jobs <- job: // an idle verifier took it
	default:
		go a.verifier(job)
	}
	<-job.done
	if job.panicked != nil {
		panic(job.panicked)
	}
	return job.id, job.err
}

// verifier runs job, then the jobs it receives until it has waited
// verifierIdle for one.
func (a *authenticator) verifier(job *verifyJob) {
	idle := time.NewTimer(verifierIdle) // a worker's idle exit, no behaviour of a session: the real clock
	defer idle.Stop()
	for {
		job.run(a)
		idle.Reset(verifierIdle)
		select {
		case job = <-a.jobs:
		case <-idle.C:
			return
		}
	}
}

func (job *verifyJob) run(a *authenticator) {
	defer func() {
		job.panicked = recover()
		close(job.done)
	}()
	job.id, job.err = a.verify(job.ctx, job.raw)
}
