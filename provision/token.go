package provision

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// ReadPrivate reads a file holding a secret, which only its owner may read.
// On Windows, where mode bits say nothing of who may read a file (every
// writable file shows 0666; access is the ACL's, which a user's profile
// keeps private), the mode is not checked.
func ReadPrivate(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s is readable by others (mode %v); run chmod 600 on it", ErrInsecureFile, path, fi.Mode().Perm())
	}
	return os.ReadFile(path)
}

// ReadToken reads a token from a file that only its owner may read.
func ReadToken(path string) (string, error) {
	b, err := ReadPrivate(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return tok, nil
}

// ensureToken returns the token in path, creating a random one (0600) if
// there is none.
func ensureToken(path string) (string, error) {
	if tok, err := ReadToken(path); err == nil {
		return tok, nil
	} else if !os.IsNotExist(err) {
		return "", err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b[:])
	if err := writePrivate(path, []byte(tok+"\n")); err != nil {
		return "", err
	}
	return tok, nil
}

// writePrivate writes a file readable by its owner only, atomically.
func writePrivate(path string, data []byte) error {
	tmp, err := os.CreateTemp(dirOf(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func dirOf(path string) string {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return "."
	}
	return path[:i]
}
