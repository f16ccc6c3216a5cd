// Package toolwiretest starts a real toolwire server process for tests.
//
//	func TestWeather(t *testing.T) {
//		server := toolwiretest.Start(t)
//		client, err := toolwire.Dial(server.Target)
//		...
//	}
//
// The server binary and its scripted models come from $TOOLWIRE_BIN and $TOOLWIRE_SCRIPTS
// (the Makefile sets both); without them, from .venv/bin/toolwire and tests/scripts in the
// repository around the working directory. Run `make setup` once to create them.
//
// The server gets the test process's environment without provider keys and URLs and without
// OTEL_* variables, so it does not trace unless a test asks, e.g. with
// Start(t, WithEnv("OTEL_TRACES_EXPORTER=console")). Its stdout and stderr are read
// continuously and kept for failure messages, so what it prints (a console exporter's spans
// too) never blocks it.
package toolwiretest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// listeningPrefix starts the one line the server prints on stdout once it serves.
const listeningPrefix = "toolwire listening on "

// Timeouts that only bound a broken run; a healthy server needs far less.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 15 * time.Second
)

// Server is a running `toolwire serve` process on a free loopback port.
type Server struct {
	// Target is the server's address, host:port, for toolwire.Dial.
	Target  string
	command *exec.Cmd
	output  *announcingWriter
	exited  chan error // receives the result of command.Wait once
}

// Option configures the server Start starts.
type Option func(settings *settings)

// settings is what the Options set.
type settings struct {
	environment []string
}

// WithEnv adds environment variables, each as "KEY=value", to the server's environment; they
// win over the inherited ones.
func WithEnv(variables ...string) Option {
	return func(settings *settings) { settings.environment = append(settings.environment, variables...) }
}

// Start starts `toolwire serve --listen 127.0.0.1:0 --scripts DIR` and waits until it serves.
// In t.Cleanup it stops the server with SIGTERM and fails the test unless it exits with 0.
// A server that cannot be found or does not start fails the test, with its output.
func Start(t testing.TB, options ...Option) *Server {
	t.Helper()
	binary, scripts, err := locate()
	if err != nil {
		t.Fatal(err)
	}
	var chosen settings
	for _, option := range options {
		option(&chosen)
	}
	output := &announcingWriter{announced: make(chan string, 1)}
	command := exec.Command(binary, "serve", "--listen", "127.0.0.1:0", "--scripts", scripts)
	// Not *os.File writers: exec copies both pipes into output until the process exits.
	command.Stdout, command.Stderr = output, output
	command.Env = append(append(withoutProviderSettings(os.Environ()), "PYTHONUNBUFFERED=1"), chosen.environment...)
	command.WaitDelay = stopTimeout
	if err := command.Start(); err != nil {
		t.Fatalf("toolwiretest: starting %s: %v", binary, err)
	}
	server := &Server{command: command, output: output, exited: make(chan error, 1)}
	go func() { server.exited <- command.Wait() }()
	select {
	case target := <-output.announced:
		server.Target = target
	case err := <-server.exited:
		t.Fatalf("toolwiretest: %s exited before it served (%v); its output:\n%s", binary, err, output.text())
	case <-time.After(startTimeout):
		_ = command.Process.Kill()
		<-server.exited
		t.Fatalf("toolwiretest: %s did not announce its port within %v; its output:\n%s", binary, startTimeout, output.text())
	}
	t.Cleanup(func() { server.stop(t) })
	return server
}

// stop sends SIGTERM and fails the test unless the server exits with 0 in time.
func (s *Server) stop(t testing.TB) {
	t.Helper()
	_ = s.command.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		if err != nil {
			t.Errorf("toolwiretest: the server did not exit cleanly on SIGTERM: %v; its output:\n%s", err, s.output.text())
		}
	case <-time.After(stopTimeout):
		_ = s.command.Process.Kill()
		<-s.exited
		t.Errorf("toolwiretest: the server did not exit within %v of SIGTERM; its output:\n%s", stopTimeout, s.output.text())
	}
}

// locate finds the server binary and the scripts folder.
func locate() (binary, scripts string, err error) {
	binary, scripts = os.Getenv("TOOLWIRE_BIN"), os.Getenv("TOOLWIRE_SCRIPTS")
	if binary != "" && scripts != "" {
		return binary, scripts, nil
	}
	directory, err := os.Getwd()
	if err != nil {
		return "", "", err
	}
	for {
		candidate := filepath.Join(directory, ".venv", "bin", "toolwire")
		if isFile(candidate) && isDirectory(filepath.Join(directory, "tests", "scripts")) {
			return candidate, filepath.Join(directory, "tests", "scripts"), nil
		}
		parent := filepath.Dir(directory)
		if parent == directory {
			return "", "", errors.New("toolwiretest: no toolwire server found: set TOOLWIRE_BIN and TOOLWIRE_SCRIPTS, " +
				"or run `make setup` in the repository root to create .venv/bin/toolwire")
		}
		directory = parent
	}
}

func isFile(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular()
}

func isDirectory(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.IsDir()
}

// withoutProviderSettings drops real provider keys and URLs (tests never reach a real provider)
// and OpenTelemetry settings (the server traces only when a test asks, with WithEnv).
func withoutProviderSettings(environment []string) []string {
	kept := make([]string, 0, len(environment))
	for _, entry := range environment {
		if !strings.HasPrefix(entry, "OPENAI_") && !strings.HasPrefix(entry, "ANTHROPIC_") &&
			!strings.HasPrefix(entry, "TOOLWIRE_CONFIG") && !strings.HasPrefix(entry, "OTEL_") {
			kept = append(kept, entry)
		}
	}
	return kept
}

// announcingWriter keeps the server's output and reports the address of its first
// "toolwire listening on" line.
type announcingWriter struct {
	mutex     sync.Mutex
	buffer    bytes.Buffer
	announced chan string
	done      bool
}

// Write keeps p and looks for the announcement.
func (w *announcingWriter) Write(p []byte) (int, error) {
	w.mutex.Lock()
	defer w.mutex.Unlock()
	w.buffer.Write(p)
	if w.done {
		return len(p), nil
	}
	for line := range strings.Lines(w.buffer.String()) {
		if strings.HasPrefix(line, listeningPrefix) && strings.HasSuffix(line, "\n") {
			w.done = true
			w.announced <- strings.TrimSpace(strings.TrimPrefix(line, listeningPrefix))
			break
		}
	}
	return len(p), nil
}

// text returns everything the server printed so far.
func (w *announcingWriter) text() string {
	w.mutex.Lock()
	defer w.mutex.Unlock()
	return w.buffer.String()
}
