package toolwiretest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLocatePrefersTheEnvironment(t *testing.T) {
	t.Setenv("TOOLWIRE_BIN", "/opt/toolwire")
	t.Setenv("TOOLWIRE_SCRIPTS", "/opt/scripts")
	binary, scripts, err := locate()
	if binary != "/opt/toolwire" || scripts != "/opt/scripts" || err != nil {
		t.Errorf("locate() = %q, %q, %v", binary, scripts, err)
	}
}

func TestLocateWalksUpToTheRepository(t *testing.T) {
	t.Setenv("TOOLWIRE_BIN", "")
	root := t.TempDir()
	for _, folder := range []string{".venv/bin", "tests/scripts", "clients/go"} {
		if err := os.MkdirAll(filepath.Join(root, folder), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, ".venv/bin/toolwire"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Join(root, "clients/go"))
	binary, scripts, err := locate()
	if binary != filepath.Join(root, ".venv/bin/toolwire") || scripts != filepath.Join(root, "tests/scripts") || err != nil {
		t.Errorf("locate() = %q, %q, %v", binary, scripts, err)
	}
}

func TestLocateSaysToRunMakeSetup(t *testing.T) {
	t.Setenv("TOOLWIRE_BIN", "")
	t.Chdir(t.TempDir())
	if _, _, err := locate(); err == nil || !strings.Contains(err.Error(), "make setup") {
		t.Errorf("locate() error = %v, want one that says to run make setup", err)
	}
}
