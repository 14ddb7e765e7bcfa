package fly

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestTheRealBinaryDeploys builds skypipe as the README says (static,
// linux/amd64) and pushes it: ReadBinary accepts it and the registry gets
// it whole.
func TestTheRealBinaryDeploys(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/skypipe")
	}
	out := filepath.Join(t.TempDir(), "skypipe")
	cmd := exec.Command("go", "build", "-o", out, "../../cmd/skypipe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, msg)
	}
	bin, err := ReadBinary(out)
	if err != nil {
		t.Fatal(err)
	}
	f := newFake(t)
	var sec secretsFor
	res, _, err := Deploy(context.Background(), f.client(f.token), Options{Binary: bin}, sec.issue)
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, f, res.App, ImageTag(bin), bin)
}
