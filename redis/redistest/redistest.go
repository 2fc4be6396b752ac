// Package redistest starts a real redis-server for tests and benchmarks:
// on a free port, without persistence, in a temporary directory, killed
// with the process that started it, optionally with a password, an ACL
// user, TLS under a test CA generated on the spot, or under a wrapper
// command (taskset, to pin it to CPUs). Kill and Restart prove the failure
// paths on the same port. It is for this repository's tests and
// benchmarks, with no compatibility promise.
//
// [Start] is for tests: they skip with a message when no redis-server
// binary can be found, and fail instead when the environment variable CI
// is "true" (CI must run them). [Launch] is the same without a testing.TB,
// for benchmark programs: the caller must Close the server.
package redistest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Config says how to configure the server. The zero value is a plain
// server with no password.
type Config struct {
	Password string // requirepass: the default user's password
	User     string // an ACL user with every right, with UserPass
	UserPass string
	TLS      bool // also listen with TLS on TLSPort, certificate from a test CA
	// Port is the plain TCP port; zero means a free one.
	Port int
	// Wrapper runs the server under a command, e.g. {"taskset", "-c",
	// "1"} to pin it to CPU 1. Pid is the server's only if the wrapper
	// execs it (as taskset does). Zero: none.
	Wrapper []string
}

// ErrNotFound is Launch's error when no redis-server binary is in PATH.
var ErrNotFound = errors.New("redis-server not found in PATH: install Debian's redis-server (apt-get install redis-server)")

// A Server is a running (or killed) redis-server owned by one test or
// program.
type Server struct {
	Port    int    // the plain TCP port
	TLSPort int    // the TLS port, when Config.TLS
	Dir     string // the working directory: config, certificates, log
	CA      *x509.CertPool

	t    testing.TB // Start's, else nil
	cfg  Config
	bin  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Binary returns the path of redis-server, or skips t (fails it under CI)
// when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err == nil {
		return bin
	}
	msg := ErrNotFound.Error() + " to run the Redis backplane tests"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: these tests must run)")
	}
	t.Skip(msg)
	return ""
}

// Start starts a server for t and stops it when t ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	Binary(t)
	s, err := Launch(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.t = t
	t.Cleanup(s.Close)
	return s
}

// Launch starts a server; the caller must Close it. It returns
// ErrNotFound when no redis-server binary is in PATH.
func Launch(cfg Config) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotFound
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, bin: bin, Dir: dir}
	for range 5 { // a free port can be taken between probe and listen
		if s.Port, err = freePort(cfg.Port); err != nil {
			break
		}
		if s.TLSPort = 0; cfg.TLS {
			if s.TLSPort, err = freePort(0); err != nil {
				break
			}
		}
		if err = s.writeConfig(); err != nil {
			break
		}
		if err = s.launch(); err == nil {
			return s, nil
		}
	}
	tail := s.logTail()
	_ = os.RemoveAll(dir)
	return nil, fmt.Errorf("redistest: redis-server did not start: %w\n%s", err, tail)
}

// Addr is the plain host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL is a redis:// URL for the plain port with db and, when the server has
// one, the default user's password.
func (s *Server) URL(db int) string {
	auth := ""
	if s.cfg.Password != "" {
		auth = ":" + s.cfg.Password + "@"
	}
	return fmt.Sprintf("redis://%s%s/%d", auth, s.Addr(), db)
}

// UserURL is a redis:// URL that logs in as the ACL user.
func (s *Server) UserURL(db int) string {
	return fmt.Sprintf("redis://%s:%s@%s/%d", s.cfg.User, s.cfg.UserPass, s.Addr(), db)
}

// TLSURL is a rediss:// URL for the TLS port (name localhost, which the
// test certificate covers), logging in as the default user.
func (s *Server) TLSURL(db int) string {
	auth := ""
	if s.cfg.Password != "" {
		auth = ":" + s.cfg.Password + "@"
	}
	return fmt.Sprintf("rediss://%slocalhost:%d/%d", auth, s.TLSPort, db)
}

// TLSConfig trusts the test CA only.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.CA, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// Kill ends the server at once (SIGKILL), as a crash would: no data is
// kept, since persistence is off.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts the server again on the same ports, empty. It fails the
// test of a server from Start, and panics for one from Launch, if the
// server does not come back.
func (s *Server) Restart() {
	if s.t != nil {
		s.t.Helper()
	}
	s.Kill()
	var err error
	for range 50 { // the port may still be held for a moment
		if err = s.launch(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	msg := fmt.Sprintf("redistest: restart failed: %v\n%s", err, s.logTail())
	if s.t == nil {
		panic(msg)
	}
	s.t.Fatal(msg)
}

// Stop ends the server, keeping its directory.
func (s *Server) Stop() { s.Kill() }

// Close ends the server and removes its directory; Start registers it
// with t.Cleanup.
func (s *Server) Close() {
	s.Kill()
	_ = os.RemoveAll(s.Dir)
}

// Pid is the running server's process ID (for its CPU time), or 0.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *Server) launch() error {
	args := append(append([]string(nil), s.cfg.Wrapper...), s.bin, filepath.Join(s.Dir, "redis.conf"))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = s.Dir
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("redis-server exited")
		default:
		}
		if ping(s.Addr()) {
			s.mu.Lock()
			s.cmd, s.done = cmd, done
			s.mu.Unlock()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-done
	return fmt.Errorf("redis-server did not answer PING within 10s")
}

// ping reports whether a server answers on addr: PONG, or NOAUTH when it
// wants a password, both mean it is up.
func ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && (strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH"))
}

func (s *Server) writeConfig() error {
	lines := []string{
		"bind 127.0.0.1",
		"port " + strconv.Itoa(s.Port),
		`save ""`,
		"appendonly no",
		"dir " + s.Dir,
		"logfile " + filepath.Join(s.Dir, "redis.log"),
		"daemonize no",
		"protected-mode no",
	}
	if s.cfg.Password != "" {
		lines = append(lines, "requirepass "+s.cfg.Password)
	}
	if s.cfg.User != "" {
		lines = append(lines, fmt.Sprintf("user %s on >%s ~* &* +@all", s.cfg.User, s.cfg.UserPass))
	}
	if s.cfg.TLS {
		if err := s.writeCerts(); err != nil {
			return err
		}
		lines = append(lines,
			"tls-port "+strconv.Itoa(s.TLSPort),
			"tls-cert-file "+filepath.Join(s.Dir, "server.crt"),
			"tls-key-file "+filepath.Join(s.Dir, "server.key"),
			"tls-ca-cert-file "+filepath.Join(s.Dir, "ca.crt"),
			"tls-auth-clients no",
		)
	}
	return os.WriteFile(filepath.Join(s.Dir, "redis.conf"), []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// writeCerts makes a CA and a server certificate for localhost and
// 127.0.0.1, valid for an hour.
func (s *Server) writeCerts() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redistest CA"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	s.CA = x509.NewCertPool()
	s.CA.AddCert(ca)
	for name, b := range map[string]*pem.Block{
		"ca.crt":     {Type: "CERTIFICATE", Bytes: caDER},
		"server.crt": {Type: "CERTIFICATE", Bytes: der},
		"server.key": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(s.Dir, name), pem.EncodeToMemory(b), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// freePort returns port, or a free one if it is zero.
func freePort(port int) (int, error) {
	if port != 0 {
		return port, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
